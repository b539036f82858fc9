"""Provider-held alignment (paper Algorithm 2): the provider solves the client's map and folds it into
a head that only that client's tenant sees.

The client uploads its embeddings X_B of the public texts in plaintext row blocks (they are
embeddings of public texts: they reveal a linear surrogate of the client's encoder on public text,
which is what the map reveals too). The provider solves the same map the client would (the same
method, parameters and validation folds, from the same statistics, on exact X^T Y instead of a
decrypted one), folds it into its head, W' = M W and b' = b_M W + b, checks which parameter sets
carry the folded head exactly (its weights' scale differs from the head's), and stores it as a head
derived for the tenant. The client then classifies with Enc(x_B) against it and never holds M, nor
X^T Y_A, nor anything about Y_A but the head's outputs.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from helix_alignment import AffineMap, SufficientStats, fold_into_head
from helix_alignment.methods import CLIENT_DEFAULT_METHOD, METHODS, solve_method, sum_stats
from helix_he.suitability import suitable_parameter_sets
from shared_protocol.folds import fold_rows
from shared_protocol.messages import AlignmentCreate, MapHolder, OutputMode

from ..blobs import BlobStore
from ..clock import utcnow
from ..errors import Conflict, ProviderError, Unprocessable
from ..session_files import SessionFiles
from ..settings import ProviderSettings
from ..store import HeadRecord, SessionRecord, Store
from .targets import session_targets

log = logging.getLogger("helix.provider.held_map")

#: Rows per uploaded block at most; a block also stays within the provider's ciphertext size limit.
MAX_ROWS_PER_BLOCK = 1024
#: Entries of X beyond this are refused: embeddings are small numbers, and huge ones would only make
#: the solve ill-conditioned (the folded head's suitability check would then refuse it anyway).
MAX_EMBEDDING_ABS = 1e4
#: Map parameters the provider sets itself, never the client.
PROVIDER_PARAMS = frozenset({"folds", "grid"})
#: Folds of the *_cv methods when the provider offers no per-fold results to client-held alignments.
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class BlockLayout:
    """X in row blocks: `rows` rows per block (the last may be shorter), `blocks` of them."""

    num_samples: int
    feature_dim: int
    rows: int

    @classmethod
    def for_session(cls, num_samples: int, feature_dim: int, max_block_bytes: int) -> BlockLayout:
        rows = max(1, min(num_samples, MAX_ROWS_PER_BLOCK, max_block_bytes // (8 * feature_dim)))
        return cls(num_samples, feature_dim, rows)

    @property
    def blocks(self) -> int:
        return math.ceil(self.num_samples / self.rows)

    def block_rows(self, index: int) -> int:
        return min(self.rows, self.num_samples - index * self.rows)

    def block_bytes(self, index: int) -> int:
        return self.block_rows(index) * self.feature_dim * 8


def session_blocks(session: SessionRecord) -> BlockLayout:
    return BlockLayout(session.num_samples, session.feature_dim, session.samples_per_ciphertext)


def check_map_method(body: AlignmentCreate) -> tuple[str, tuple[tuple[str, float], ...]]:
    """The method and parameters a provider-held alignment asks for, checked: a known method that needs
    no more than X^T X, X^T Y and the sums (whole or per fold), and only that method's own parameters."""
    method = body.map_method or CLIENT_DEFAULT_METHOD
    info = METHODS.get(method)
    if info is None or not info.needs <= {"xtx", "sums", "xty", "fold_xty"}:
        usable = sorted(m for m, i in METHODS.items() if i.needs <= {"xtx", "sums", "xty", "fold_xty"})
        raise Unprocessable("invalid_map_method", f"map method {method!r} is not offered; use one of {usable}")
    allowed = set(info.params) - PROVIDER_PARAMS
    unknown = sorted(set(body.map_params) - allowed)
    if unknown:
        raise Unprocessable(
            "invalid_map_params", f"map method {method!r} takes {sorted(allowed) or 'no parameters'}, not {unknown}"
        )
    for name, value in body.map_params.items():
        if value < 0 or (name in ("kappa", "rank") and value <= 0) or (name == "rank" and value != int(value)):
            raise Unprocessable("invalid_map_params", f"map parameter {name} = {value} is out of range")
    return method, tuple(sorted((k, float(v)) for k, v in body.map_params.items()))


def check_blocks(session: SessionRecord, start: int, blocks: Sequence[bytes]) -> None:
    """Each block has exactly its rows of float64 values, all finite and of moderate size."""
    layout = session_blocks(session)
    end = start + len(blocks)
    if end > layout.blocks:
        raise Unprocessable("chunk_out_of_range", f"blocks [{start}, {end}) exceed the session's {layout.blocks}")
    for i, blob in enumerate(blocks, start):
        if len(blob) != layout.block_bytes(i):
            raise Unprocessable(
                "invalid_embeddings",
                f"block {i}: {len(blob)} bytes, expected {layout.block_rows(i)} rows of {layout.feature_dim} "
                f"float64 values ({layout.block_bytes(i)} bytes)",
            )
        values = np.frombuffer(blob, dtype="<f8")
        if not np.isfinite(values).all() or float(np.max(np.abs(values), initial=0.0)) > MAX_EMBEDDING_ABS:
            raise Unprocessable(
                "invalid_embeddings", f"block {i}: values must be finite and at most {MAX_EMBEDDING_ABS:g} in size"
            )


class HeldMapComputation:
    """Solve, fold and store one provider-held alignment; run as a background task after the upload."""

    def __init__(self, store: Store, blobs: BlobStore, settings: ProviderSettings, files: SessionFiles) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._files = files

    async def run(self, session_id: str) -> None:
        """Any failure is recorded on the session, never left "computing"."""
        session = self._store.get_session(session_id)
        if session is None:
            return
        try:
            await run_in_threadpool(self._compute, session)
        except ProviderError as exc:
            self._store.fail_session(session_id, exc.detail)
        except Exception as exc:
            log.exception("a provider-held alignment failed")  # no session id in logs: ids are capabilities
            self._store.fail_session(session_id, f"computation failed: {exc}")

    def _compute(self, session: SessionRecord) -> None:
        y, corpus_size, base = session_targets(self._store, self._blobs, session)
        x = self._embeddings(session)
        affine, choice = solve_session_map(session, x, y, corpus_size, self._folds())
        weight, bias = fold_into_head(
            affine, self._blobs.get_array(base.weights_blob), self._blobs.get_array(base.bias_blob)
        )
        sets = suitable_parameter_sets(
            self._settings.parameter_sets,
            weight,
            bias,
            max_query_norm=self._settings.max_query_norm,
            pairwise=base.output_mode == OutputMode.ranking,
        )
        if not sets:
            raise Unprocessable(
                "folded_head_unsuitable",
                f"the head with the map folded in fits no parameter set (its outputs for inputs of norm up to "
                f"{self._settings.max_query_norm:g} exceed every set's headroom); try a stronger regularisation",
            )
        derived = derived_head(base, session, self._blobs.put_array(weight), self._blobs.put_array(bias))
        if not self._store.complete_provider_held(session.session_id, derived, choice, session.output_columns):
            self._store.fail_session(session.session_id, "the head was deleted during the alignment")
        self._files.remove(session.session_id)  # the client's embeddings are no longer needed

    def _embeddings(self, session: SessionRecord) -> np.ndarray:
        paths = self._files.paths(session.session_id, session.num_ciphertexts)
        parts = []
        for path in paths:
            with open(path, "rb") as f:
                parts.append(np.frombuffer(f.read(), dtype="<f8"))
        x = np.concatenate(parts).reshape(session.num_samples, session.feature_dim)
        return x.astype(np.float64)

    def _folds(self) -> int:
        return self._settings.offered_validation_folds or DEFAULT_FOLDS


def solve_session_map(
    session: SessionRecord, x: np.ndarray, y: np.ndarray, corpus_size: int, folds: int
) -> tuple[AffineMap, tuple[tuple[str, float], ...]]:
    """The map the client would have solved from the same statistics, and what its method chose."""
    method = session.map_method or CLIENT_DEFAULT_METHOD
    params: dict[str, Any] = {k: int(v) if k == "rank" else v for k, v in session.map_params}
    per_fold = "fold_xty" in METHODS[method].needs
    fold_stats = None
    if per_fold:
        rows = fold_rows(corpus_size, x.shape[0] - corpus_size, folds)
        fold_stats = [SufficientStats.from_data(x[r], y[r]) for r in rows]
        stats = sum_stats(fold_stats)
    else:
        stats = SufficientStats.from_data(x, y)
    affine, chosen = solve_method(method, stats, folds=fold_stats, **params)
    return affine, _choice(chosen)


def _choice(chosen: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(
        sorted((k, float(v)) for k, v in chosen.items() if isinstance(v, int | float) and k not in PROVIDER_PARAMS)
    )


def derived_head(base: HeadRecord, session: SessionRecord, weights_blob: str, bias_blob: str) -> HeadRecord:
    """The base head with the tenant's map folded in: the same classes, output mode and report, the
    client's dimension as input, no published texts, owned by the session's tenant."""
    return replace(
        base,
        id="ph_" + secrets.token_hex(12),
        dim=session.feature_dim,
        created_at=utcnow(),
        weights_blob=weights_blob,
        bias_blob=bias_blob,
        texts=(),
        texts_embeddings_blob=None,
        encoder_model_id=session.client_model_id,
        map_holder=MapHolder.provider,
        base_head_id=base.id,
        tenant_id=session.tenant_id,
    )


def refuse_derived_base(head: HeadRecord) -> None:
    """Alignments and admin evaluations take the admin's heads only, not heads derived from them."""
    if head.base_head_id is not None:
        raise Conflict(
            "derived_head",
            f"head {head.id!r} was derived from {head.base_head_id!r} by a provider-held alignment; "
            "align against the base head",
        )
