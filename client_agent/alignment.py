"""The client's half of secure alignment: embed the public texts, encrypt, stream, fetch
Enc(X_aug^T Y_A), decrypt and solve the ridge map locally. X never leaves in the clear; the
alignment key pair is fresh and revoked when done."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from helix_alignment import SufficientStats
from helix_alignment.methods import METHODS, solve_method, sum_stats
from helix_embeddings import Embedder
from helix_he.context import he_context
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data
from shared_protocol.corpus import corpus_sha256
from shared_protocol.folds import fold_rows
from shared_protocol.messages import AlignmentChunkHeader, AlignmentCreate, AlignmentResultHeader, AlignmentState, KeyPurpose
from helix_he.packing import CrossCovarianceLayout, stride_bits_for

from helix_he.keys import ClientKeys
from .keystore import KeyStore
from .maps import MapStore, StoredMap
from .provider_client import ProviderClient


class AlignmentError(RuntimeError):
    pass


def _decrypt_result(keys: ClientKeys, header: AlignmentResultHeader, blobs: list[bytes], max_bytes: int,
                    per_fold: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(X^T Y, 1^T Y) of the whole session, or of each fold (fold-major blobs) when asked for."""
    if per_fold != bool(header.fold_sizes):
        raise AlignmentError("the provider's result is " + ("not " if per_fold else "") + "per fold, unlike the request")
    k = len(header.fold_sizes) if per_fold else 1
    sums = [np.asarray(s) for s in header.fold_y_sums] if per_fold else [np.asarray(header.y_sum)]
    if len(sums) != k or len(blobs) % k:
        raise AlignmentError(f"result carries {len(blobs)} ciphertexts and {len(sums)} sums for {k} folds")
    size = len(blobs) // k
    parts = []
    for f in range(k):
        xty = decrypt_cross_covariance(keys, header, blobs[f * size : (f + 1) * size], max_bytes=max_bytes)
        if sums[f].shape != (xty.shape[1],):
            raise AlignmentError(f"result carries {sums[f].shape} column sums for {xty.shape[1]} columns")
        parts.append((xty, sums[f]))
    return parts


@dataclass
class AlignmentProgress:
    """What an alignment job reports while it runs."""

    phase: str = "starting"
    uploaded_ciphertexts: int = 0
    total_ciphertexts: int = 0
    computed_columns: int = 0
    total_columns: int = 0


ProgressFn = Callable[[AlignmentProgress], None]


def run_alignment(provider: ProviderClient, embedder: Embedder, keystore: KeyStore, maps: MapStore, *, client_name: str,
                  head_id: str, corpus_id: str, ridge_lambda: float, include_head_texts: bool, parameter_set: str | None,
                  chunk_ciphertexts: int, progress: ProgressFn | None = None, poll_seconds: float = 0.25,
                  map_method: str = "ridge", map_params: dict[str, float | int] | None = None) -> StoredMap:
    report = progress or (lambda p: None)
    status = AlignmentProgress()
    t0 = time.perf_counter()
    sent0, recv0 = provider.bytes_sent, provider.bytes_received
    info = provider.info()
    pset = parameter_set or info.default_parameter_set
    head = provider.head(head_id)
    status.phase = "fetching public texts"
    report(status)
    texts, sha = provider.corpus_texts(corpus_id)
    if corpus_sha256(texts) != sha:
        raise AlignmentError(f"corpus {corpus_id!r} texts do not hash to the advertised {sha}")
    corpus_size = len(texts)
    per_fold = "fold_xty" in METHODS[map_method].needs
    if per_fold and info.limits.alignment_validation_folds < 2:
        raise AlignmentError(f"map method {map_method!r} chooses its regularisation on validation folds, which this "
                             "provider does not offer; use a method without validation folds")
    if include_head_texts:
        ht = provider.head_texts(head_id)
        if corpus_sha256(ht.texts) != ht.sha256:
            raise AlignmentError("published head texts do not match their hash")
        texts = texts + ht.texts
    status.phase = "embedding"
    report(status)
    x = embedder.embed(texts).astype(np.float64)
    # |x| <= 1 entrywise keeps every encrypted sum inside the modulus (the provider assumes it).
    x_scale = float(np.max(np.abs(x))) or 1.0
    x_unit = x / x_scale
    stride_bits = stride_bits_for(he_context(pset).n, x_unit.shape[1])
    stored_key, keys = keystore.register(provider, client_name, KeyPurpose.alignment, pset, stride_bits=max(1, stride_bits))
    try:
        session = provider.create_alignment(AlignmentCreate(
            head_id=head_id, corpus_id=corpus_id, corpus_sha256=sha, key_id=stored_key.key_id, feature_dim=x_unit.shape[1],
            include_head_texts=include_head_texts, client_model_id=embedder.model_id, validation_folds=per_fold))
        if session.num_samples != x_unit.shape[0]:
            raise AlignmentError(f"provider expects {session.num_samples} samples, the client embedded {x_unit.shape[0]}")
        layout = CrossCovarianceLayout.for_key(keys.he.n, x_unit.shape[1], x_unit.shape[0], max(1, stride_bits))
        if (session.samples_per_ciphertext, session.num_ciphertexts) != (layout.samples_per_ciphertext, layout.num_ciphertexts):
            raise AlignmentError(f"provider expects {session.num_ciphertexts} ciphertexts of {session.samples_per_ciphertext} "
                                 f"samples, the client packed {layout.num_ciphertexts} of {layout.samples_per_ciphertext}")
        if layout.data_scale_bits > session.max_data_scale_bits:
            raise AlignmentError(f"provider accepts data scales up to 2^{session.max_data_scale_bits}")
        status.phase = "uploading"
        status.total_ciphertexts = layout.num_ciphertexts
        status.total_columns = session.output_columns
        report(status)
        for start in range(0, layout.num_ciphertexts, chunk_ciphertexts):
            count = min(chunk_ciphertexts, layout.num_ciphertexts - start)
            blobs = encrypt_alignment_data(keys, x_unit, layout, start, count)
            session = provider.upload_chunk(session.session_id, AlignmentChunkHeader(start=start, count=count,
                                            data_scale_bits=layout.data_scale_bits), blobs)
            status.uploaded_ciphertexts = session.received_ciphertexts
            report(status)
        status.phase = "computing"
        report(status)
        session = provider.start_compute(session.session_id)
        while session.state == AlignmentState.computing:
            time.sleep(poll_seconds)
            session = provider.session(session.session_id)
            if session.computed_columns != status.computed_columns:
                status.computed_columns = session.computed_columns
                report(status)
        if session.state != AlignmentState.done:
            raise AlignmentError(f"alignment failed on the provider: {session.error}")
        status.phase = "decrypting"
        report(status)
        header, blobs = provider.alignment_result(session.session_id, max_blob_bytes=info.limits.max_ciphertext_bytes)
        parts = _decrypt_result(keys, header, blobs, info.limits.max_ciphertext_bytes, per_fold)
        provider.delete_session(session.session_id)
    finally:
        try:
            provider.revoke_key(stored_key.key_id)
        finally:
            keystore.forget(stored_key.key_id)
    folds = None
    if per_fold:
        rows = fold_rows(corpus_size, x.shape[0] - corpus_size, len(parts))
        if [len(r) for r in rows] != header.fold_sizes:
            raise AlignmentError(f"provider's folds have sizes {header.fold_sizes}, the shared partition {[len(r) for r in rows]}")
        folds = [SufficientStats.from_cross(x[r], xty * x_scale, y_sum) for r, (xty, y_sum) in zip(rows, parts)]  # undo x / x_scale
        stats = sum_stats(folds)
    else:
        stats = SufficientStats.from_cross(x, parts[0][0] * x_scale, parts[0][1])
    # The map method only changes this local solve: X^T Y and 1^T Y (the paper's protocol), or
    # their per-fold parts for methods that validate on held-out alignment data. Methods needing
    # the provider's Y^T Y are refused by ClientSettings.
    params = {"lam": ridge_lambda} if map_method == "ridge" else {}
    affine, chosen = solve_method(map_method, stats, folds=folds, **{**params, **(map_params or {})})
    status.phase = "done"
    report(status)
    return maps.save({
        "provider_url": provider.base_url, "head_id": head_id, "corpus_id": corpus_id, "corpus_sha256": sha,
        "client_model_id": embedder.model_id, "provider_model_id": info.encoder_model_id, "parameter_set": pset,
        "ridge_lambda": float(chosen.get("lambda", ridge_lambda)), "map_method": map_method,
        "map_params": {k: v for k, v in chosen.items() if k not in ("grid", "cv_losses")},
        "num_samples": int(x.shape[0]), "include_head_texts": include_head_texts,
        "created_at": datetime.now(timezone.utc).isoformat(), "alignment_seconds": time.perf_counter() - t0,
        "bytes_sent": provider.bytes_sent - sent0, "bytes_received": provider.bytes_received - recv0,
    }, affine)
