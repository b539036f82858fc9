"""The computation of an alignment session, run as a background task after all chunks arrived.

Enc(X_aug^T Y_A) against the provider's plaintext embeddings of the same public texts. On the
provider's own worker pool (the default) the work is split into one piece of result groups per
worker, and with validation folds every piece returns its groups for each fold in turn, so the
pieces are re-interleaved into one fold-major result. On a cluster executor (`executor = ray`) the
ciphertexts are split into shards instead, whose partial results are added in a tree
(`alignment_shards`): a big corpus then spreads over as many machines as the cluster has."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import numpy as np
from starlette.concurrency import run_in_threadpool

from helix_he.budget import y_scale_bits_for
from helix_shards import ShardExecutor
from shared_protocol.folds import fold_rows
from shared_protocol.framing import encode_frame
from shared_protocol.messages import AlignmentResultHeader

from ..blobs import BlobStore
from ..errors import Conflict, ProviderError
from ..session_files import SessionFiles
from ..settings import ProviderSettings
from ..store import SessionRecord, Store
from ..workers.jobs import CrossCovarianceJob
from ..workers.pool import HePool
from .alignment_shards import SessionKeys, sharded_cross_covariance
from .compute_lease import ComputeLease, LeaseLost
from .targets import session_targets

log = logging.getLogger("helix.provider.alignment")


def piece_bounds(groups: int, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of result groups, one piece per worker: each piece repeats the per-ciphertext
    preparation, so more pieces cost time; the BLAS products inside a piece are what scales."""
    pieces = min(groups, max(1, workers))
    bounds = np.linspace(0, groups, pieces + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def fold_major(parts: list[list[bytes]], folds: int) -> list[bytes]:
    """Join pieces (each: its groups for fold 0, then fold 1, ...) into all groups of fold 0, then
    all groups of fold 1, ...; with folds = 1 this is plain concatenation."""
    out: list[bytes] = []
    for f in range(folds):
        for part in parts:
            size = len(part) // folds
            out.extend(part[f * size : (f + 1) * size])
    return out


class AlignmentComputation:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        settings: ProviderSettings,
        pool: HePool,
        files: SessionFiles,
        executor: ShardExecutor | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._pool = pool
        self._files = files
        self._executor = executor if executor is not None and executor.distributed else None

    async def run(self, lease: ComputeLease) -> None:
        """Compute and store the result while holding the session's lease; any failure is recorded on
        the session, never left "computing". A computation whose lease was taken by another replica
        (this one stalled past it) stops and records nothing: the session is the other's now."""
        session_id = lease.session_id
        session = self._store.get_session(session_id)
        if session is None:  # deleted before the task started
            return
        try:
            await lease.hold(self._compute(session, lease.owner))
        except LeaseLost:
            log.warning("an alignment computation's lease was taken by another replica; stopped computing it")
        except ProviderError as exc:
            self._store.fail_session(session_id, exc.detail, owner=lease.owner)
        except Exception as exc:
            log.exception("an alignment computation failed")  # no session id in logs: ids are capabilities
            self._store.fail_session(session_id, f"computation failed: {exc}", owner=lease.owner)

    async def _compute(self, session: SessionRecord, owner: str) -> None:
        sid = session.session_id
        y, folds = await run_in_threadpool(self._targets, session)
        key = self._store.get_key(session.key_id)
        if key is None:
            raise Conflict("session_orphaned", "the session's key is gone")
        if not key.galois_keys_blob:
            raise Conflict("session_orphaned", "the session's key carries no Galois keys")
        assert session.data_scale_bits is not None, "every chunk was uploaded, so the first fixed the scale"
        layout = session.layout
        groups = layout.result_groups(session.output_columns)
        base = CrossCovarianceJob(
            parameter_set=session.parameter_set,
            layout=layout,
            ciphertext_paths=tuple(self._files.paths(sid, session.num_ciphertexts)),
            y_path=str(await run_in_threadpool(self._files.write_targets, sid, y.astype(np.float64))),
            group_start=0,
            group_stop=0,
            y_scale_bits=y_scale_bits_for(y, session.data_scale_bits),
            max_ciphertext_bytes=self._settings.max_ciphertext_bytes,
            public_key_path=str(self._blobs.path(key.public_key_blob)),
            galois_keys_path=str(self._blobs.path(key.galois_keys_blob)),
            folds=tuple(folds) if folds is not None else None,
        )

        async def piece(lo: int, hi: int) -> tuple[list[bytes], float]:
            res = await self._pool.run(replace(base, group_start=lo, group_stop=hi))
            self._store.add_computed_columns(sid, sum(len(g) for g in groups[lo:hi]), owner=owner)
            return res

        if self._executor is not None:
            replies, scale = await run_in_threadpool(
                sharded_cross_covariance,
                self._executor,
                SessionKeys(
                    session.parameter_set,
                    self._blobs.path(key.public_key_blob).read_bytes(),
                    self._blobs.path(key.galois_keys_blob).read_bytes(),
                    self._settings.max_ciphertext_bytes,
                ),
                layout,
                base.ciphertext_paths,
                y.astype(np.float64),
                base.y_scale_bits,
                folds,
                self._settings.alignment_shard_ciphertexts,
            )
            self._store.add_computed_columns(sid, session.output_columns, owner=owner)
        else:
            results = await asyncio.gather(*(piece(lo, hi) for lo, hi in piece_bounds(len(groups), self._pool.workers)))
            replies = fold_major([part for part, _ in results], len(folds) if folds else 1)
            scale = results[0][1]
        header = AlignmentResultHeader(
            session_id=sid,
            feature_dim=session.feature_dim,
            output_columns=session.output_columns,
            stride_bits=layout.stride_bits,
            value_scale=scale,
            y_sum=y.sum(axis=0).tolist(),
            fold_sizes=[len(r) for r in folds or []],
            fold_y_sums=[y[r].sum(axis=0).tolist() for r in folds or []],
        )
        frame = encode_frame(header, replies)
        result_id = await run_in_threadpool(self._blobs.put, frame, ".frame")
        if not self._store.complete_session(sid, result_id, session.output_columns, len(frame), owner=owner):
            # Taken over (or deleted) meanwhile: the holder's result counts, and it still reads the files.
            self._blobs.delete(result_id)
            return
        self._files.remove(sid)  # the client's ciphertexts are no longer needed

    def _targets(self, session: SessionRecord) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Y over the session's samples (corpus, then head texts if included) and, for per-fold
        results, each fold's sample indices."""
        y, corpus_size, _ = session_targets(self._store, self._blobs, session)
        k = session.validation_folds
        return y, (fold_rows(corpus_size, y.shape[0] - corpus_size, k) if k else None)
