"""Admin (bearer admin token): train heads on the provider's own data, evaluate and delete them."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from helix_web.openapi import binary_body
from shared_protocol.messages import (
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
from ..deps import Catalog, require_admin
from ..errors import Unprocessable
from ..services.catalog import GivenHead

router = APIRouter(prefix="/v1/admin/heads", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("", response_model=list[HeadTrainingReport])
def list_heads(catalog: Catalog) -> list[HeadTrainingReport]:
    return [views.training_report(h) for h in catalog.list_heads()]


@router.post("", response_model=HeadTrainingReport, status_code=201)
async def create_head(body: HeadCreateFromDataset, catalog: Catalog) -> HeadTrainingReport:
    return views.trained(await catalog.train_from_dataset(body))


@router.post(
    "/upload",
    response_model=HeadTrainingReport,
    status_code=201,
    openapi_extra=binary_body(
        "application/x-ndjson", 'labelled JSONL: one {"text": ..., "label": ...} object per line'
    ),
)
async def upload_head(
    request: Request,
    catalog: Catalog,
    name: Annotated[Identifier, Query()],
    task: str = Query("custom"),
    class_names: str | None = Query(None, description="comma-separated, in label order"),
    in_distribution_texts: int = Query(64, ge=0, le=128),
    regularization_c: float = Query(1.0, ge=1e-6, le=1e6, allow_inf_nan=False),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    output_mode: OutputMode = Query(OutputMode.logits, description="what classify replies reveal"),
    map_holder: MapHolder = Query(MapHolder.client, description="who may hold the alignment map"),
) -> HeadTrainingReport:
    """Train from a labelled JSONL upload: one {"text", "label"} object per line."""
    names = class_names.split(",") if class_names else None
    outcome = await catalog.train_from_upload(
        name, task, await request.body(), names, in_distribution_texts, regularization_c, seed, output_mode, map_holder
    )
    return views.trained(outcome)


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
