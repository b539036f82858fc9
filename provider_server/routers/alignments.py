"""Alignment sessions (services/alignment.py): create, upload chunks (client-held) or embeddings
(provider-held), compute, fetch, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from helix_web.frames import read_frame
from helix_web.openapi import binary_body
from shared_protocol.framing import FRAME_MEDIA_TYPE
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentSession,
    EmbeddingChunkHeader,
    MapHolder,
)

from .. import views
from ..deps import Alignments, State, Tenant

router = APIRouter(prefix="/v1/alignments", tags=["alignment"])


@router.post("", response_model=AlignmentSession, status_code=201)
def create_session(body: AlignmentCreate, tenant: Tenant, alignments: Alignments) -> AlignmentSession:
    return views.session_view(alignments.create(tenant, body))


@router.get("/{session_id}", response_model=AlignmentSession)
def get_session(session_id: str, tenant: Tenant, alignments: Alignments) -> AlignmentSession:
    return views.session_view(alignments.get(session_id, tenant.tenant_id))


@router.put(
    "/{session_id}/chunks",
    response_model=AlignmentSession,
    openapi_extra=binary_body(FRAME_MEDIA_TYPE, "a frame: AlignmentChunkHeader and the chunk's data ciphertexts"),
)
async def upload_chunk(
    session_id: str, request: Request, state: State, tenant: Tenant, alignments: Alignments
) -> AlignmentSession:
    # Before the body is read: the session's ciphertext count bounds the frame.
    session = alignments.receiving(session_id, tenant.tenant_id)
    header, blobs = await read_frame(
        request,
        AlignmentChunkHeader,
        max_blobs=session.num_ciphertexts,
        max_blob_bytes=state.settings.max_ciphertext_bytes,
    )
    return views.session_view(await alignments.add_chunk(tenant, session, header, blobs))


@router.put(
    "/{session_id}/embeddings",
    response_model=AlignmentSession,
    openapi_extra=binary_body(
        FRAME_MEDIA_TYPE, "a frame: EmbeddingChunkHeader and row blocks of X (provider-held alignments)"
    ),
)
async def upload_embeddings(
    session_id: str, request: Request, state: State, tenant: Tenant, alignments: Alignments
) -> AlignmentSession:
    """Provider-held alignments: the client's embeddings of the public texts, in plaintext row blocks."""
    session = alignments.receiving(session_id, tenant.tenant_id, MapHolder.provider)
    header, blobs = await read_frame(
        request,
        EmbeddingChunkHeader,
        max_blobs=session.num_ciphertexts,
        max_blob_bytes=state.settings.max_ciphertext_bytes,
    )
    return views.session_view(await alignments.add_embeddings(tenant, session, header, blobs))


@router.post("/{session_id}/compute", response_model=AlignmentSession, status_code=202)
async def start_compute(session_id: str, tenant: Tenant, alignments: Alignments) -> AlignmentSession:
    return views.session_view(alignments.start_compute(session_id, tenant.tenant_id))


@router.get(
    "/{session_id}/result",
    response_class=FileResponse,
    responses={
        200: {
            "content": {FRAME_MEDIA_TYPE: {}},
            "description": "Enc(X_aug^T Y_A), 2^stride_bits columns per ciphertext",
        }
    },
)
def get_result(session_id: str, tenant: Tenant, alignments: Alignments) -> FileResponse:
    return FileResponse(alignments.result_path(session_id, tenant.tenant_id), media_type=FRAME_MEDIA_TYPE)


@router.delete("/{session_id}", status_code=204)
def delete_session(session_id: str, tenant: Tenant, alignments: Alignments) -> None:
    alignments.delete(session_id, tenant.tenant_id)
