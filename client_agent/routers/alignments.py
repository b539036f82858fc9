"""Start and watch secure alignments against a provider head."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from helix_web.errors import ApiError, not_found
from shared_protocol.messages import Identifier

from ..alignment import AlignmentRun, ProgressFn
from ..alignment_config import AlignmentConfig
from ..api_errors import provider_errors_as_api_errors
from ..api_models import AlignmentJobView, AlignmentProgressView, AlignmentRequest
from ..deps import State, require_token
from ..jobs import AlignmentJob, JobWork, TooManyJobs
from ..settings import check_client_method
from ..state import ClientState

router = APIRouter(prefix="/v1", tags=["alignment"], dependencies=[Depends(require_token)])


def job_view(job: AlignmentJob) -> AlignmentJobView:
    return AlignmentJobView(
        job_id=job.job_id,
        head_id=job.head_id,
        corpus_id=job.corpus_id,
        state=job.state,
        progress=AlignmentProgressView(**asdict(job.progress)),
        map_id=job.map_id,
        error=job.error,
        created_at=job.created_at,
    )


def _work(state: ClientState, config: AlignmentConfig) -> JobWork:
    """The job's body: one alignment run, answering the id of the map it stored."""

    def work(progress: ProgressFn) -> str:
        run = AlignmentRun(
            config,
            state.provider,
            state.embedder(),
            state.keystore,
            state.maps,
            progress,
            on_session=state.jobs.record_session,
            shards=state.shards,
        )
        return run.run().meta.map_id

    return work


@router.post("/alignments", response_model=AlignmentJobView, status_code=202)
def start_alignment(body: AlignmentRequest, state: State) -> AlignmentJobView:
    if body.map_method is not None:
        try:
            check_client_method(body.map_method)
        except ValueError as exc:
            raise ApiError(422, "bad_method", str(exc)) from None
    try:
        state.jobs.check_capacity()
        with provider_errors_as_api_errors():  # fail fast on unknown ids instead of inside the job
            state.cache.head(body.head_id, refresh=True)
            state.provider.corpus(body.corpus_id)
        config = AlignmentConfig.for_request(state.settings, body)
        job = state.jobs.start(body.head_id, body.corpus_id, _work(state, config))
    except TooManyJobs as exc:
        raise ApiError(429, "too_many_alignments", str(exc)) from None
    return job_view(job)


@router.get("/alignments", response_model=list[AlignmentJobView])
def list_jobs(state: State) -> list[AlignmentJobView]:
    return [job_view(j) for j in state.jobs.list()]


@router.get("/alignments/{job_id}", response_model=AlignmentJobView)
def get_job(job_id: Identifier, state: State) -> AlignmentJobView:
    job = state.jobs.get(job_id)
    if job is None:
        raise not_found("alignment_job", job_id)
    return job_view(job)
