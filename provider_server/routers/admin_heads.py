"""Admin (bearer admin token): train heads on the provider's own data, evaluate and delete them.

A training waits for its head (201) unless the request says `Prefer: respond-async`: then it answers
202 with the job at once (`routers.admin_jobs`). Either way it runs as a job (`services.training_jobs`)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from helix_web.openapi import binary_body
from shared_protocol.messages import (
    AdminJob,
    ErrorResponse,
    HeadCreateFromDataset,
    HeadEvaluateRequest,
    HeadEvaluateResponse,
    HeadTrainingReport,
    Identifier,
    MapHolder,
    OutputMode,
    ReferenceLogitsRequest,
    ReferenceLogitsResponse,
)

from .. import views
from ..deps import Catalog, Jobs, require_admin
from ..errors import Unprocessable
from ..prefer import RESPOND_ASYNC, prefers_async
from ..services.catalog import GivenHead, HeadTraining

router = APIRouter(prefix="/v1/admin/heads", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("", response_model=list[HeadTrainingReport])
def list_heads(catalog: Catalog) -> list[HeadTrainingReport]:
    return [views.training_report(h) for h in catalog.list_heads()]


#: What a training endpoint answers besides 201 (waited for) and the errors every endpoint may answer.
TRAINING_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": AdminJob,
        "description": "with `Prefer: respond-async`: the training runs as a job (Location: /v1/admin/jobs/{job_id})",
    },
    504: {
        "model": ErrorResponse,
        "description": "the training ran past head_training_timeout_seconds and was stopped; nothing was stored",
    },
}
PREFER = Header(description="`respond-async` (RFC 7240): answer 202 with a job at once instead of 201 once trained")


async def _train(training: HeadTraining, jobs: Jobs, request: Request) -> HeadTrainingReport | JSONResponse:
    """Synchronously (201 with the report, as before) or, if the client prefers, as a job (202)."""
    if not prefers_async(request.headers.getlist("prefer")):
        return views.trained(await jobs.train(training))
    job = jobs.submit(training)
    return JSONResponse(
        views.job_view(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/admin/jobs/{job.job_id}", "Preference-Applied": RESPOND_ASYNC},
    )


@router.post("", response_model=HeadTrainingReport, status_code=201, responses=TRAINING_RESPONSES)
async def create_head(
    body: HeadCreateFromDataset,
    request: Request,
    catalog: Catalog,
    jobs: Jobs,
    prefer: Annotated[str | None, PREFER] = None,
) -> HeadTrainingReport | JSONResponse:
    """Train a head on the provider's own embeddings of a dataset split."""
    return await _train(catalog.dataset_training(body), jobs, request)


@router.post(
    "/upload",
    response_model=HeadTrainingReport,
    status_code=201,
    responses=TRAINING_RESPONSES,
    openapi_extra=binary_body(
        "application/x-ndjson", 'labelled JSONL: one {"text": ..., "label": ...} object per line'
    ),
)
async def upload_head(
    request: Request,
    catalog: Catalog,
    jobs: Jobs,
    name: Annotated[Identifier, Query()],
    task: str = Query("custom"),
    class_names: str | None = Query(None, description="comma-separated, in label order"),
    in_distribution_texts: int = Query(64, ge=0, le=128),
    regularization_c: float = Query(1.0, ge=1e-6, le=1e6, allow_inf_nan=False),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    output_mode: OutputMode = Query(OutputMode.logits, description="what classify replies reveal"),
    map_holder: MapHolder = Query(MapHolder.client, description="who may hold the alignment map"),
    prefer: Annotated[str | None, PREFER] = None,
) -> HeadTrainingReport | JSONResponse:
    """Train from a labelled JSONL upload: one {"text", "label"} object per line."""
    names = class_names.split(",") if class_names else None
    training = catalog.upload_training(
        name, task, await request.body(), names, in_distribution_texts, regularization_c, seed, output_mode, map_holder
    )
    return await _train(training, jobs, request)


class HeadFromWeights(BaseModel):
    """A head with given weights: logits = x @ weight + bias, x the provider encoder's embedding."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    task: str = "custom"
    class_names: list[str] = Field(min_length=2)
    weight: list[list[float]] = Field(description="dim rows of one weight per class")
    bias: list[float] | None = Field(None, description="one per class; default zeros")
    texts: list[str] = Field(default_factory=list, max_length=128, description="published with the head")
    output_mode: OutputMode = OutputMode.logits
    map_holder: MapHolder = MapHolder.client


@router.post("/weights", response_model=HeadTrainingReport, status_code=201)
async def head_from_weights(body: HeadFromWeights, catalog: Catalog) -> HeadTrainingReport:
    """Publish a head whose weights the admin brings (e.g. the rows of an LLM's LM head for answer letters)."""
    k = len(body.class_names)
    if not body.weight or any(len(row) != k for row in body.weight):
        raise Unprocessable("invalid_head", f"weight must be rows of {k} values (one per class)")
    given = GivenHead(
        name=body.name,
        task=body.task,
        class_names=tuple(body.class_names),
        weight=np.asarray(body.weight, dtype=np.float64),
        bias=np.zeros(k) if body.bias is None else np.asarray(body.bias, dtype=np.float64),
        texts=tuple(body.texts),
        output_mode=body.output_mode,
        map_holder=body.map_holder,
    )
    return views.trained(await catalog.create_from_weights(given))


@router.post("/{head_id}/evaluate", response_model=HeadEvaluateResponse)
async def evaluate_head(head_id: str, body: HeadEvaluateRequest, catalog: Catalog) -> HeadEvaluateResponse:
    ev = await catalog.evaluate(head_id, body)
    return HeadEvaluateResponse(head_id=head_id, examples=ev.examples, accuracy=ev.accuracy, predictions=ev.predictions)


@router.post("/{head_id}/reference-logits", response_model=ReferenceLogitsResponse)
def reference_logits(head_id: str, body: ReferenceLogitsRequest, catalog: Catalog) -> ReferenceLogitsResponse:
    return ReferenceLogitsResponse(head_id=head_id, logits=catalog.reference_logits(head_id, body.embeddings).tolist())


@router.delete("/{head_id}", status_code=204)
def delete_head(head_id: str, catalog: Catalog) -> None:
    """Delete a head and every head derived from it by provider-held alignments."""
    catalog.delete_head(head_id)
