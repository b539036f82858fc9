"""Start and watch secure alignments against a provider head; list stored maps."""
from __future__ import annotations

import threading
from dataclasses import asdict

from fastapi import APIRouter, Depends

from helix_web.errors import ApiError, not_found

from ..alignment import AlignmentProgress, run_alignment
from ..api_models import AlignmentJobView, AlignmentProgressView, AlignmentRequest
from ..deps import State, require_token
from ..maps import MapMetadata
from ..provider_client import ProviderError
from ..settings import check_client_method
from ..state import AlignmentJob, ClientState

router = APIRouter(prefix="/v1", tags=["alignment"], dependencies=[Depends(require_token)])


def job_view(job: AlignmentJob) -> AlignmentJobView:
    return AlignmentJobView(job_id=job.job_id, head_id=job.head_id, corpus_id=job.corpus_id, state=job.state,
                            progress=AlignmentProgressView(**asdict(job.progress)), map_id=job.map_id, error=job.error,
                            created_at=job.created_at)


def _run(state: ClientState, job: AlignmentJob, body: AlignmentRequest) -> None:
    def on_progress(p: AlignmentProgress) -> None:
        job.progress = AlignmentProgress(**asdict(p))

    try:
        stored = run_alignment(state.provider, state.embedder(), state.keystore, state.maps,
                               client_name=state.settings.client_name, head_id=body.head_id, corpus_id=body.corpus_id,
                               ridge_lambda=state.settings.ridge_lambda if body.ridge_lambda is None else body.ridge_lambda,
                               include_head_texts=body.include_head_texts, parameter_set=state.settings.parameter_set,
                               chunk_ciphertexts=state.settings.alignment_chunk_ciphertexts, progress=on_progress,
                               **_method(state, body))
        job.map_id = stored.meta.map_id
        job.state = "done"
    except Exception as exc:  # reported through the job, not lost in a thread
        job.error = str(exc)
        job.state = "failed"


def _method(state: ClientState, body: AlignmentRequest) -> dict[str, object]:
    """An explicit ridge_lambda asks for the paper's ridge; otherwise the request's or the agent's method."""
    if body.ridge_lambda is not None and body.map_method in (None, "ridge"):
        return {"map_method": "ridge", "map_params": {}}
    if body.map_method is not None:
        return {"map_method": body.map_method, "map_params": {}}
    return {"map_method": state.settings.alignment_method, "map_params": state.settings.map_params()}


@router.post("/alignments", response_model=AlignmentJobView, status_code=202)
def start_alignment(body: AlignmentRequest, state: State) -> AlignmentJobView:
    if body.map_method is not None:
        try:
            check_client_method(body.map_method)
        except ValueError as exc:
            raise ApiError(422, "bad_method", str(exc)) from None
    try:  # fail fast on unknown ids instead of inside the job
        state.provider.head(body.head_id)
        state.provider.corpus(body.corpus_id)
    except ProviderError as exc:
        raise ApiError(exc.status if exc.status < 500 else 502, exc.code, exc.detail) from None
    job = state.new_job(body.head_id, body.corpus_id)
    threading.Thread(target=_run, args=(state, job, body), name=f"align-{job.job_id}", daemon=True).start()
    return job_view(job)


@router.get("/alignments", response_model=list[AlignmentJobView])
def list_jobs(state: State) -> list[AlignmentJobView]:
    return [job_view(j) for j in state.jobs.values()]


@router.get("/alignments/{job_id}", response_model=AlignmentJobView)
def get_job(job_id: str, state: State) -> AlignmentJobView:
    job = state.jobs.get(job_id)
    if job is None:
        raise not_found("alignment_job", job_id)
    return job_view(job)


@router.get("/maps", response_model=list[MapMetadata])
def list_maps(state: State) -> list[MapMetadata]:
    return state.maps.list()


@router.get("/maps/{map_id}", response_model=MapMetadata)
def get_map(map_id: str, state: State) -> MapMetadata:
    stored = state.maps.get(map_id)
    if stored is None:
        raise not_found("map", map_id)
    return stored.meta
