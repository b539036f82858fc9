"""Classify texts privately through the provider's head."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from helix_web.errors import ApiError, not_found

from ..api_models import ClassifyRequest, ClassifyResponse, ClassifyResult
from ..deps import State, require_token
from ..inference import MapMismatch, check_map, classify_texts
from ..provider_client import ProviderError

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Depends(require_token)])


@router.post("/classify", response_model=ClassifyResponse)
def classify(body: ClassifyRequest, state: State) -> ClassifyResponse:
    try:
        head = state.provider.head(body.head_id)
        embedder = state.embedder()
        if body.map_id:
            stored = state.maps.get(body.map_id)
            if stored is None:
                raise not_found("map", body.map_id)
        else:
            stored = state.maps.latest_for(state.provider.base_url, body.head_id, embedder.model_id)
            if stored is None:
                raise ApiError(409, "no_alignment", f"no alignment map for head {body.head_id!r} and embedder "
                               f"{embedder.model_id!r}: POST /v1/alignments first")
        if stored.meta.head_id != body.head_id:
            raise ApiError(409, "map_mismatch", f"map {stored.meta.map_id} was fitted for head {stored.meta.head_id!r}")
        check_map(stored, embedder, head)  # before any key is registered: a refusal changes nothing
        key, keys = state.inference_key()
        info = state.provider_info()
        result = classify_texts(state.provider, embedder, keys, key.key_id, head, stored, body.texts,
                                state.settings.classify_batch_size, info.limits.max_ciphertext_bytes)
    except MapMismatch as exc:
        raise ApiError(409, "map_mismatch", str(exc)) from None
    except ProviderError as exc:
        raise ApiError(exc.status if exc.status < 500 else 502, exc.code, exc.detail) from None
    results = [
        ClassifyResult(text_index=i, label=result.labels[i], logits=result.logits[i].tolist(),
                       probabilities={name: float(p) for name, p in zip(head.class_names, result.probabilities[i])})
        for i in range(len(body.texts))
    ]
    return ClassifyResponse(head_id=head.id, map_id=stored.meta.map_id, results=results, latency_ms=result.seconds * 1e3,
                            he_latency_ms=result.he_seconds * 1e3, bytes_sent=result.bytes_sent, bytes_received=result.bytes_received)
