"""Private inference: evaluate a head on encrypted queries; the reply decrypts to logits only."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from helix_web.errors import ApiError, not_found
from helix_web.frames import frame_response, read_frame
from helix_he.context import he_context
from shared_protocol.messages import (ClassifyBatchHeader, ClassifyBatchReplyHeader, ClassifyHeader, ClassifyReplyHeader,
                                      KeyPurpose)
from helix_he.packing import LinearHeadLayout
from helix_he.rlwe import SeededCiphertext

from .. import he_worker
from ..deps import State, usable_key

router = APIRouter(prefix="/v1", tags=["classify"])


@router.post("/classify", response_class=Response,
             responses={200: {"content": {"application/vnd.helix.frame": {}}, "description": "encrypted logits"}})
async def classify(request: Request, state: State) -> Response:
    s = state.settings
    header, blobs = await read_frame(request, ClassifyHeader, max_blobs=s.max_queries_per_request,
                                     max_blob_bytes=s.max_ciphertext_bytes)
    head = state.repo.get_head(header.head_id)
    if head is None:
        raise not_found("head", header.head_id)
    key = usable_key(state, header.key_id, KeyPurpose.inference)
    if header.num_queries != len(blobs):
        raise ApiError(400, "malformed_frame", f"header says {header.num_queries} queries but {len(blobs)} ciphertexts were sent")
    he = he_context(key["parameter_set"])
    expected = SeededCiphertext.wire_size(he.output_level.primes, he.n)
    for i, blob in enumerate(blobs):  # a cheap check here; the worker parses and validates every residue
        if len(blob) != expected:
            raise ApiError(422, "invalid_ciphertext", f"query {i}: ciphertext has {len(blob)} bytes, a query for "
                           f"{key['parameter_set']} has {expected}")
    layout = LinearHeadLayout(n=he.n, d=head["dim"], k=head["num_classes"])
    weights = str(state.blobs.path(head["weights_blob"]))
    bias = str(state.blobs.path(head["bias_blob"]))
    # Spread one request over the workers; each worker caches the prepared head.
    parts = max(1, min(s.workers, len(blobs)))
    size = -(-len(blobs) // parts)
    futures = [
        state.run_he(he_worker.classify, key["parameter_set"], weights, bias, s.noise_flooding_bits,
                             str(state.blobs.path(key["public_key_blob"])), blobs[i : i + size], s.max_ciphertext_bytes,
                             header.query_scale_bits)
        for i in range(0, len(blobs), size)
    ]
    results = await asyncio.gather(*futures)
    replies: list[bytes] = []
    for part in results:
        if isinstance(part, str):
            raise ApiError(422, "invalid_ciphertext", part)
        for per_query in part:
            replies.extend(per_query)
    groups = layout.class_groups()
    reply = ClassifyReplyHeader(
        head_id=header.head_id, num_queries=len(blobs), ciphertexts_per_query=len(groups),
        class_groups=[list(g) for g in groups],
        output_positions=[layout.output_positions(g).tolist() for g in range(len(groups))],
        num_classes=head["num_classes"], noise_flooding_bits=s.noise_flooding_bits,
    )
    return frame_response(reply, replies)


@router.post("/classify/batch", response_class=Response,
             responses={200: {"content": {"application/vnd.helix.frame": {}}, "description": "encrypted logits, one ciphertext per class"}})
async def classify_batch(request: Request, state: State) -> Response:
    """Many queries in feature-major packing: `dim` ciphertexts in, one ciphertext per class out.
    One worker evaluates a batch (the work is a few integer combinations of `dim` polynomials)."""
    s = state.settings
    header, blobs = await read_frame(request, ClassifyBatchHeader, max_blobs=4096, max_blob_bytes=s.max_ciphertext_bytes)
    head = state.repo.get_head(header.head_id)
    if head is None:
        raise not_found("head", header.head_id)
    key = usable_key(state, header.key_id, KeyPurpose.inference)
    he = he_context(key["parameter_set"])
    if header.dim != head["dim"] or len(blobs) != head["dim"]:
        raise ApiError(400, "malformed_frame", f"head {header.head_id} takes {head['dim']} feature ciphertexts; header says "
                       f"{header.dim} and the frame has {len(blobs)}")
    if header.num_queries > he.n:
        raise ApiError(400, "malformed_frame", f"a batch holds at most {he.n} queries under {key['parameter_set']}, "
                       f"header says {header.num_queries}")
    expected = SeededCiphertext.wire_size(he.output_level.primes, he.n)
    for i, blob in enumerate(blobs):
        if len(blob) != expected:
            raise ApiError(422, "invalid_ciphertext", f"feature {i}: ciphertext has {len(blob)} bytes, a query for "
                           f"{key['parameter_set']} has {expected}")
    result = await state.run_he(he_worker.classify_batch, key["parameter_set"], str(state.blobs.path(head["weights_blob"])),
                                str(state.blobs.path(head["bias_blob"])), s.noise_flooding_bits,
                                str(state.blobs.path(key["public_key_blob"])), blobs, header.num_queries,
                                s.max_ciphertext_bytes, header.query_scale_bits)
    if isinstance(result, str):
        raise ApiError(422, "invalid_ciphertext", result)
    reply = ClassifyBatchReplyHeader(head_id=header.head_id, num_queries=header.num_queries, num_classes=head["num_classes"],
                                     noise_flooding_bits=s.noise_flooding_bits)
    return frame_response(reply, result)
