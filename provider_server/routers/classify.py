"""Private inference: evaluate a head on encrypted queries; the reply decrypts to logits only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from helix_web.frames import frame_response, read_frame
from helix_web.openapi import binary_body
from shared_protocol.framing import FRAME_MEDIA_TYPE
from shared_protocol.messages import ClassifyBatchHeader, ClassifyHeader

from .. import views
from ..deps import Inference, State, Tenant
from ..services.inference import MAX_BATCH_FEATURES

router = APIRouter(prefix="/v1", tags=["classify"])


@router.post(
    "/classify",
    response_class=Response,
    responses={200: {"content": {FRAME_MEDIA_TYPE: {}}, "description": "encrypted logits"}},
    openapi_extra=binary_body(FRAME_MEDIA_TYPE, "a frame: ClassifyHeader and one query ciphertext per query"),
)
async def classify(request: Request, state: State, tenant: Tenant, inference: Inference) -> Response:
    s = state.settings
    header, blobs = await read_frame(
        request, ClassifyHeader, max_blobs=s.max_queries_per_request, max_blob_bytes=s.max_ciphertext_bytes
    )
    result = await inference.classify(tenant, header, blobs)
    return frame_response(views.classify_reply(result), result.replies)


@router.post(
    "/classify/batch",
    response_class=Response,
    responses={200: {"content": {FRAME_MEDIA_TYPE: {}}, "description": "encrypted logits, one ciphertext per class"}},
    openapi_extra=binary_body(FRAME_MEDIA_TYPE, "a frame: ClassifyBatchHeader and one ciphertext per dimension"),
)
async def classify_batch(request: Request, state: State, tenant: Tenant, inference: Inference) -> Response:
    """Many queries in feature-major packing: `dim` ciphertexts in, one ciphertext per class out."""
    header, blobs = await read_frame(
        request, ClassifyBatchHeader, max_blobs=MAX_BATCH_FEATURES, max_blob_bytes=state.settings.max_ciphertext_bytes
    )
    result = await inference.classify_batch(tenant, header, blobs)
    return frame_response(views.batch_reply(result), result.replies)
