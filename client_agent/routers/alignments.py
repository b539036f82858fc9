"""Start and watch secure alignments against a provider head."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from helix_web.errors import ApiError, not_found
from shared_protocol.messages import HeadInfo, Identifier, MapHolder

from ..alignment import AlignmentRun, ProgressFn
from ..alignment_config import AlignmentConfig
from ..api_errors import provider_errors_as_api_errors
from ..api_models import AlignmentJobView, AlignmentProgressView, AlignmentRequest
from ..deps import State, require_token
from ..held_alignment import ProviderHeldRun
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
    """The job's body: one alignment run (client- or provider-held), answering the id of the map, or of the
    provider-held record, it stored."""
    run_class = ProviderHeldRun if config.map_holder == "provider" else AlignmentRun

    def work(progress: ProgressFn) -> str:
        run = run_class(
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
            head = state.cache.head(body.head_id, refresh=True)
            state.provider.corpus(body.corpus_id)
        holder = choose_holder(head, body)
        config = AlignmentConfig.for_request(state.settings, body, holder)
        job = state.jobs.start(body.head_id, body.corpus_id, _work(state, config))
    except TooManyJobs as exc:
        raise ApiError(429, "too_many_alignments", str(exc)) from None
    return job_view(job)


def choose_holder(head: HeadInfo, body: AlignmentRequest) -> str:
    """The request's map holder, else the client unless the head offers only provider-held maps; a
    holder the head does not offer is refused here, as the provider would refuse it."""
    if body.map_holder is not None:
        holder = MapHolder(body.map_holder)
    else:
        holder = MapHolder.provider if head.map_holder == MapHolder.provider else MapHolder.client
    if head.base_head_id is not None:
        raise ApiError(409, "derived_head", f"head {head.id!r} was derived from {head.base_head_id!r}; align with that")
    if not head.map_holder.offers(holder):
        raise ApiError(
            422,
            "map_holder_not_offered",
            f"head {head.id!r} offers only {head.map_holder.value}-held maps (its map_holder), "
            f"not {holder.value}-held ones",
        )
    return holder.value


@router.get("/alignments", response_model=list[AlignmentJobView])
def list_jobs(state: State) -> list[AlignmentJobView]:
    return [job_view(j) for j in state.jobs.list()]


@router.get("/alignments/{job_id}", response_model=AlignmentJobView)
def get_job(job_id: Identifier, state: State) -> AlignmentJobView:
    job = state.jobs.get(job_id)
    if job is None:
        raise not_found("alignment_job", job_id)
    return job_view(job)
