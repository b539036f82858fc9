"""Secure alignment sessions: the client streams Enc(X_aug) in chunks, the provider computes
Enc(X_aug^T Y_A) against its plaintext embeddings of the same public texts, the client fetches it.

The provider learns nothing about X (it only ever holds ciphertexts under the client's key); the
client learns X_aug^T Y_A, which is what the paper's protocol reveals, and nothing else: every
other coefficient of each reply is uniformly random. Results are packed m columns per ciphertext
with the Galois keys registered with the alignment key (`helix_he.cross_covariance`)."""
from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from helix_web.errors import ApiError, not_found
from helix_web.frames import read_frame
from helix_he.context import he_context
from shared_protocol.folds import fold_disclosure_error, fold_rows
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import (AlignmentChunkHeader, AlignmentCreate, AlignmentResultHeader, AlignmentSession,
                                      AlignmentState, KeyPurpose)
from helix_he.packing import CrossCovarianceLayout

from .. import he_worker
from ..db import iso, parse_dt, utcnow
from ..deps import State, expired, usable_key
from helix_he.budget import y_scale_bits_for
from ..state import ProviderState

router = APIRouter(prefix="/v1/alignments", tags=["alignment"])
log = logging.getLogger("helix.provider.alignment")


def _layout(row: dict[str, Any]) -> CrossCovarianceLayout:
    n = he_context(row["parameter_set"]).n
    return CrossCovarianceLayout(n=n, feature_dim=row["feature_dim"], num_samples=row["num_samples"],
                                 stride_bits=row["samples_per_ciphertext"].bit_length() - 1)


def session_view(row: dict[str, Any]) -> AlignmentSession:
    got = set(row["received"])
    layout = _layout(row)
    missing = [i for i in range(row["num_ciphertexts"]) if i not in got][:256]
    return AlignmentSession(
        missing_ciphertexts=missing,
        session_id=row["session_id"], head_id=row["head_id"], corpus_id=row["corpus_id"], key_id=row["key_id"],
        parameter_set=row["parameter_set"], state=AlignmentState(row["state"]), num_samples=row["num_samples"],
        feature_dim=row["feature_dim"], samples_per_ciphertext=row["samples_per_ciphertext"],
        stride_bits=layout.stride_bits, max_data_scale_bits=layout.max_data_scale_bits,
        num_ciphertexts=row["num_ciphertexts"], received_ciphertexts=len(row["received"]),
        computed_columns=row["computed_columns"], output_columns=row["output_columns"],
        validation_folds=row["validation_folds"], error=row["error"],
        created_at=parse_dt(row["created_at"]), expires_at=parse_dt(row["expires_at"]),
    )


def _session_dir(state: ProviderState, session_id: str) -> Path:
    return state.settings.data_dir / "sessions" / session_id


def _live_session(state: ProviderState, session_id: str) -> dict[str, Any]:
    row = state.repo.get_session(session_id)
    if row is None:
        raise not_found("alignment_session", session_id)
    if expired(row["expires_at"]):
        raise ApiError(410, "session_expired", f"alignment session {session_id!r} expired at {row['expires_at']}")
    return row


@router.post("", response_model=AlignmentSession, status_code=201)
def create_session(body: AlignmentCreate, state: State) -> AlignmentSession:
    head = state.repo.get_head(body.head_id)
    if head is None:
        raise not_found("head", body.head_id)
    corpus = state.repo.get_corpus(body.corpus_id)
    if corpus is None:
        raise not_found("corpus", body.corpus_id)
    if body.corpus_sha256 != corpus["sha256"]:
        raise ApiError(409, "corpus_mismatch", f"corpus {body.corpus_id!r} has sha256 {corpus['sha256']}, the client "
                       f"embedded {body.corpus_sha256}: fetch the texts again")
    key = usable_key(state, body.key_id, KeyPurpose.alignment)
    num_samples = corpus["size"] + (len(head["texts"]) if body.include_head_texts else 0)
    if num_samples > state.settings.max_alignment_samples:
        raise ApiError(422, "too_many_samples", f"{num_samples} samples exceed the limit of {state.settings.max_alignment_samples}")
    he = he_context(key["parameter_set"])
    if body.feature_dim > he.n:
        raise ApiError(422, "feature_dim_too_large", f"feature_dim {body.feature_dim} exceeds the ring dimension {he.n}")
    if not key.get("galois_keys_blob"):
        raise ApiError(422, "galois_keys_required", f"key {body.key_id!r} carries no Galois keys; alignment keys "
                       "must (see POST /v1/keys, galois_elements)")
    layout = CrossCovarianceLayout.for_key(he.n, body.feature_dim, num_samples, len(key["galois_elements"]))
    folds = 0
    if body.validation_folds:
        folds = state.settings.offered_validation_folds
        if not folds:
            raise ApiError(422, "validation_folds_disabled", "this provider does not return per-fold results "
                           "(HELIX_PROVIDER_ALIGNMENT_VALIDATION_FOLDS < 2); use a map method without validation folds")
        error = fold_disclosure_error(num_samples, body.feature_dim, folds)
        if error is not None:
            raise ApiError(422, "validation_folds_too_small", error)
    created = utcnow()
    expires = min(created + timedelta(seconds=state.settings.session_ttl_seconds), parse_dt(key["expires_at"]))
    row = {
        "session_id": "a_" + secrets.token_hex(12), "head_id": body.head_id, "corpus_id": body.corpus_id,
        "key_id": body.key_id, "parameter_set": key["parameter_set"], "state": AlignmentState.receiving.value,
        "num_samples": num_samples, "feature_dim": body.feature_dim,
        "samples_per_ciphertext": layout.samples_per_ciphertext, "num_ciphertexts": layout.num_ciphertexts,
        "received": [], "computed_columns": 0, "output_columns": head["dim"], "error": None,
        "created_at": iso(created), "expires_at": iso(expires), "include_head_texts": int(body.include_head_texts),
        "client_model_id": body.client_model_id, "data_scale_bits": None, "result_blob": None,
        "validation_folds": folds,
    }
    state.repo.add_session(row)
    return session_view(row)


@router.get("/{session_id}", response_model=AlignmentSession)
def get_session(session_id: str, state: State) -> AlignmentSession:
    row = state.repo.get_session(session_id)
    if row is None:
        raise not_found("alignment_session", session_id)
    return session_view(row)


@router.put("/{session_id}/chunks", response_model=AlignmentSession)
async def upload_chunk(session_id: str, request: Request, state: State) -> AlignmentSession:
    s = state.settings
    row = _live_session(state, session_id)
    if row["state"] != AlignmentState.receiving.value:
        raise ApiError(409, "session_not_receiving", f"session is {row['state']}; chunks are accepted only while receiving")
    usable_key(state, row["key_id"], KeyPurpose.alignment)
    header, blobs = await read_frame(request, AlignmentChunkHeader, max_blobs=row["num_ciphertexts"],
                                     max_blob_bytes=s.max_ciphertext_bytes)
    if header.count != len(blobs):
        raise ApiError(400, "malformed_frame", f"header says {header.count} ciphertexts but {len(blobs)} were sent")
    if header.start + header.count > row["num_ciphertexts"]:
        raise ApiError(422, "chunk_out_of_range", f"ciphertexts [{header.start}, {header.start + header.count}) exceed "
                       f"the session's {row['num_ciphertexts']}")
    if row["data_scale_bits"] is not None and row["data_scale_bits"] != header.data_scale_bits:
        raise ApiError(422, "scale_mismatch", f"earlier chunks used scale 2^{row['data_scale_bits']}, this one 2^{header.data_scale_bits}")
    max_bits = _layout(row).max_data_scale_bits
    if header.data_scale_bits > max_bits:
        raise ApiError(422, "scale_too_large", f"data scale 2^{header.data_scale_bits} leaves Y too few bits below the "
                       f"prime for {row['num_samples']} samples; use at most 2^{max_bits}")
    error = await state.run_he(he_worker.validate_ciphertexts, row["parameter_set"], blobs, s.max_ciphertext_bytes,
                               header.data_scale_bits)
    if error is not None:
        raise ApiError(422, "invalid_ciphertext", error)
    folder = _session_dir(state, session_id)

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i, blob in enumerate(blobs):
            target = folder / f"{header.start + i:06d}.ct"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(blob)
            tmp.replace(target)

    await run_in_threadpool(write)
    row = state.repo.mark_received(session_id, list(range(header.start, header.start + header.count)), header.data_scale_bits)
    return session_view(row)


def _provider_targets(state: ProviderState, row: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Y over the session's samples (corpus, then head texts if included) and, for per-fold
    results, each fold's sample indices."""
    corpus = state.repo.get_corpus(row["corpus_id"])
    head = state.repo.get_head(row["head_id"])
    if corpus is None or head is None:
        raise ApiError(409, "session_orphaned", "the session's corpus or head was deleted")
    y = state.blobs.get_array(corpus["embeddings_blob"])
    corpus_size = y.shape[0]
    if row["include_head_texts"] and head["texts"]:
        y = np.vstack([y, state.blobs.get_array(head["texts_embeddings_blob"])])
    if y.shape[0] != row["num_samples"]:
        raise ApiError(409, "session_orphaned", "the corpus changed since the session was created")
    k = row["validation_folds"]
    return y, (fold_rows(corpus_size, y.shape[0] - corpus_size, k) if k else None)


async def _compute(state: ProviderState, session_id: str) -> None:
    row = state.repo.get_session(session_id)
    assert row is not None
    s = state.settings
    try:
        y, folds = await run_in_threadpool(_provider_targets, state, row)
        key = state.repo.get_key(row["key_id"])
        if key is None:
            raise ApiError(409, "session_orphaned", "the session's key is gone")
        if not key.get("galois_keys_blob"):
            raise ApiError(409, "session_orphaned", "the session's key carries no Galois keys")
        pk_path = str(state.blobs.path(key["public_key_blob"]))
        gk_path = str(state.blobs.path(key["galois_keys_blob"]))
        y_path = str(state.blobs.path(state.blobs.put_array(y.astype(np.float64))))
        y_bits = y_scale_bits_for(y, row["data_scale_bits"])
        folder = _session_dir(state, session_id)
        paths = [str(folder / f"{i:06d}.ct") for i in range(row["num_ciphertexts"])]
        d_a = row["output_columns"]
        layout = _layout(row)
        groups = layout.result_groups(d_a)
        # One piece per worker: each piece repeats the per-ciphertext preparation, so more pieces
        # cost time; the BLAS products inside a piece are what scales.
        pieces = min(len(groups), max(1, s.workers))
        bounds = np.linspace(0, len(groups), pieces + 1).astype(int)

        async def run(lo: int, hi: int) -> tuple[list[bytes], float]:
            res = await state.run_he(he_worker.cross_covariance, row["parameter_set"], row["feature_dim"],
                                     row["num_samples"], layout.stride_bits, paths, y_path, lo, hi, y_bits,
                                     s.max_ciphertext_bytes, pk_path, gk_path, folds)
            cur = state.repo.get_session(session_id)
            done = sum(len(g) for g in groups[lo:hi])
            state.repo.update_session(session_id, computed_columns=(cur["computed_columns"] if cur else 0) + done)
            return res

        results = await asyncio.gather(*(run(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo))
        # Each piece returns its groups for every fold in turn; the result is fold-major overall.
        k = len(folds) if folds else 1
        blobs = []
        for f in range(k):
            for part, _ in results:
                size = len(part) // k
                blobs.extend(part[f * size : (f + 1) * size])
        scale = results[0][1]
        header = AlignmentResultHeader(session_id=session_id, feature_dim=row["feature_dim"], output_columns=d_a,
                                       stride_bits=layout.stride_bits, value_scale=scale, y_sum=y.sum(axis=0).tolist(),
                                       fold_sizes=[len(r) for r in folds or []],
                                       fold_y_sums=[y[r].sum(axis=0).tolist() for r in folds or []])
        result_id = await run_in_threadpool(state.blobs.put, encode_frame(header, blobs), ".frame")
        state.repo.update_session(session_id, state=AlignmentState.done.value, result_blob=result_id, computed_columns=d_a)
        shutil.rmtree(folder, ignore_errors=True)  # the client's ciphertexts are no longer needed
    except ApiError as exc:
        state.repo.update_session(session_id, state=AlignmentState.failed.value, error=exc.detail)
    except Exception as exc:  # a failed computation must be reported, not left "computing"
        log.exception("alignment %s failed", session_id)
        state.repo.update_session(session_id, state=AlignmentState.failed.value, error=f"computation failed: {exc}")


@router.post("/{session_id}/compute", response_model=AlignmentSession, status_code=202)
async def start_compute(session_id: str, state: State) -> AlignmentSession:
    row = _live_session(state, session_id)
    if row["state"] in (AlignmentState.computing.value, AlignmentState.done.value):
        return session_view(row)
    missing = row["num_ciphertexts"] - len(row["received"])
    if missing:
        raise ApiError(409, "chunks_missing", f"{missing} of {row['num_ciphertexts']} ciphertexts have not been uploaded")
    usable_key(state, row["key_id"], KeyPurpose.alignment)
    state.repo.update_session(session_id, state=AlignmentState.computing.value, computed_columns=0, error=None)
    task = asyncio.create_task(_compute(state, session_id))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return session_view(state.repo.get_session(session_id))  # type: ignore[arg-type]


@router.get("/{session_id}/result", response_class=FileResponse,
            responses={200: {"content": {FRAME_MEDIA_TYPE: {}}, "description": "Enc(X_aug^T Y_A), 2^stride_bits columns per ciphertext"}})
def get_result(session_id: str, state: State) -> FileResponse:
    row = _live_session(state, session_id)
    if row["state"] != AlignmentState.done.value or not row["result_blob"]:
        raise ApiError(409, "result_not_ready", f"session is {row['state']}" + (f": {row['error']}" if row["error"] else ""))
    return FileResponse(state.blobs.path(row["result_blob"]), media_type=FRAME_MEDIA_TYPE)


@router.delete("/{session_id}", status_code=204)
def delete_session(session_id: str, state: State) -> None:
    row = state.repo.get_session(session_id)
    if row is None:
        raise not_found("alignment_session", session_id)
    if row["result_blob"]:
        state.blobs.delete(row["result_blob"])
    shutil.rmtree(_session_dir(state, session_id), ignore_errors=True)
    state.repo.delete_session(session_id)
