"""Classify texts privately through the provider's head."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from helix_web.errors import ApiError

from ..api_errors import provider_errors_as_api_errors
from ..api_models import ClassifyRequest, ClassifyResponse, ClassifyResult
from ..classifier import classify as classify_privately
from ..deps import State, require_token
from ..inference import MapMismatch

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Depends(require_token)])


@router.post("/classify", response_model=ClassifyResponse)
def classify(body: ClassifyRequest, state: State) -> ClassifyResponse:
    try:
        with provider_errors_as_api_errors():
            done = classify_privately(state, body.texts, body.head_id, body.map_id)
    except MapMismatch as exc:
        raise ApiError(409, "map_mismatch", str(exc)) from None
    head, result = done.head, done.result
    logits, probs = result.logits, result.probabilities
    results = [
        ClassifyResult(
            text_index=i,
            label=result.labels[i],
            ranking=[head.class_names[int(c)] for c in result.ranking[i]],
            logits=None if logits is None else logits[i].tolist(),
            probabilities=None if probs is None else dict(zip(head.class_names, map(float, probs[i]), strict=False)),
        )
        for i in range(len(body.texts))
    ]
    return ClassifyResponse(
        head_id=head.id,
        map_id=done.map.meta.map_id,
        map_holder="provider" if done.map.provider_held else "client",
        output_mode=result.output_mode.value,
        results=results,
        latency_ms=result.seconds * 1e3,
        he_latency_ms=result.he_seconds * 1e3,
        bytes_sent=result.bytes_sent,
        bytes_received=result.bytes_received,
    )
