"""An alignment's cross-covariance as a sum over shards of its ciphertexts, for a cluster executor.

Enc(X^T Y) = sum_s Enc(X_s^T Y_s): shard s is a run of the client's ciphertexts with the provider's
rows of Y for the same samples. Each shard's partial is the full result of `encrypted_cross_covariance`
on that shard alone (every result group, every fold the shard has samples of: packed, masked and
re-randomised like any reply), and the partials are added ciphertext by ciphertext in a tree. The sum
decrypts to X^T Y: the outputs add up, every masked coefficient stays uniform (a sum of uniform
values), and each partial carries a fresh encryption of zero. Packing is linear, so packing each
shard and adding equals packing the sum, up to CKKS noise.

Why bytes and not paths in a shard: a cluster's workers may be on other machines than the session's
files. The tasks here are module-level functions of picklable values (`helix_shards`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal

from helix_he.context import HEContext, he_context, load_from_bytes, save_to_bytes
from helix_he.cross_covariance import encrypted_cross_covariance
from helix_he.keys import Rerandomizer
from helix_he.packing import CrossCovarianceLayout
from helix_shards import ShardExecutor, ShardTask

#: Per fold (one entry without folds): the result groups' ciphertexts, None where the shard has no sample.
FoldReplies = list[list[bytes] | None]


@dataclass(frozen=True)
class Partial:
    """One shard's (or a sum of shards') replies, with their value scale."""

    replies: FoldReplies
    scale: float


@dataclass(frozen=True)
class SessionKeys:
    """What every worker loads once per computation: the client's public and Galois keys."""

    parameter_set: str
    public_key: bytes
    galois_keys: bytes
    max_ciphertext_bytes: int


@dataclass(frozen=True)
class ShardWorkerState:
    he: HEContext
    rerandomizer: Rerandomizer
    galois_keys: seal.GaloisKeys
    max_ciphertext_bytes: int


@dataclass(frozen=True)
class CrossCovarianceShard:
    """Ciphertexts [first, first + len) of a session, the rows of Y of their samples, and each fold's
    samples among them (shard-local indices; None without folds)."""

    layout: CrossCovarianceLayout  # the session's
    first: int
    ciphertexts: tuple[bytes, ...]
    y: np.ndarray
    y_scale_bits: int
    folds: tuple[np.ndarray, ...] | None


def load_worker_state(keys: SessionKeys) -> ShardWorkerState:
    he = he_context(keys.parameter_set)
    pk = seal.PublicKey()
    load_from_bytes(pk, he.context, keys.public_key)
    gk = seal.GaloisKeys()
    load_from_bytes(gk, he.context, keys.galois_keys)
    return ShardWorkerState(he, Rerandomizer(he, pk), gk, keys.max_ciphertext_bytes)


def shard_partial(state: ShardWorkerState, shard: CrossCovarianceShard) -> Partial:
    """Enc(X_s^T Y_s) of every result group (and fold the shard touches)."""
    he, full = state.he, shard.layout
    layout = CrossCovarianceLayout(full.n, full.feature_dim, shard.y.shape[0], full.stride_bits)
    assert layout.num_ciphertexts == len(shard.ciphertexts), "a shard's rows are its ciphertexts' samples"

    def load(c: int) -> seal.Ciphertext:
        return he.ciphertext_from_bytes(
            shard.ciphertexts[c], level=he.output_level, max_bytes=state.max_ciphertext_bytes
        )

    groups = range(len(layout.result_groups(shard.y.shape[1])))
    present = None if shard.folds is None else [k for k, rows in enumerate(shard.folds) if len(rows)]
    blobs, scale = encrypted_cross_covariance(
        he,
        layout,
        load,
        shard.y,
        groups,
        state.rerandomizer,
        state.galois_keys,
        y_scale_bits=shard.y_scale_bits,
        folds=None if shard.folds is None or present is None else [shard.folds[k] for k in present],
    )
    if shard.folds is None or present is None:
        return Partial([blobs], scale)
    replies: FoldReplies = [None] * len(shard.folds)
    size = len(groups)
    for i, k in enumerate(present):
        replies[k] = blobs[i * size : (i + 1) * size]
    return Partial(replies, scale)


def add_partials(parameter_set: str, max_ciphertext_bytes: int, a: Partial, b: Partial) -> Partial:
    """The sum of two partials, ciphertext by ciphertext (a fold only one of them has is kept as is)."""
    if len(a.replies) != len(b.replies) or abs(a.scale - b.scale) > 1e-9 * a.scale:
        raise ValueError("partials of different computations cannot be added")
    he = he_context(parameter_set)
    out: FoldReplies = []
    for ra, rb in zip(a.replies, b.replies, strict=True):
        if ra is None or rb is None:
            out.append(ra if rb is None else rb)
            continue
        summed = []
        for x, y in zip(ra, rb, strict=True):
            ct = he.ciphertext_from_bytes(x, level=he.output_level, max_bytes=max_ciphertext_bytes)
            he.evaluator.add_inplace(
                ct, he.ciphertext_from_bytes(y, level=he.output_level, max_bytes=max_ciphertext_bytes)
            )
            summed.append(save_to_bytes(ct))
        out.append(summed)
    return Partial(out, a.scale)


def shard_bounds(num_ciphertexts: int, per_shard: int) -> list[tuple[int, int]]:
    """[first, stop) ciphertext ranges of at most `per_shard` each."""
    return [(lo, min(num_ciphertexts, lo + per_shard)) for lo in range(0, num_ciphertexts, per_shard)]


def session_shards(
    layout: CrossCovarianceLayout,
    ciphertext_paths: Sequence[str],
    y: np.ndarray,
    y_scale_bits: int,
    folds: Sequence[np.ndarray] | None,
    per_shard: int,
) -> Iterator[CrossCovarianceShard]:
    """The session's shards, each read from disk only when the executor asks for it."""
    m = layout.stride
    for lo, hi in shard_bounds(len(ciphertext_paths), per_shard):
        s0, s1 = lo * m, min(layout.num_samples, hi * m)
        local = None
        if folds is not None:
            local = tuple(np.asarray(r[(r >= s0) & (r < s1)] - s0, dtype=np.int64) for r in folds)
        yield CrossCovarianceShard(
            layout=layout,
            first=lo,
            ciphertexts=tuple(Path(p).read_bytes() for p in ciphertext_paths[lo:hi]),
            y=np.ascontiguousarray(y[s0:s1]),
            y_scale_bits=y_scale_bits,
            folds=local,
        )


def sharded_cross_covariance(
    executor: ShardExecutor,
    keys: SessionKeys,
    layout: CrossCovarianceLayout,
    ciphertext_paths: Sequence[str],
    y: np.ndarray,
    y_scale_bits: int,
    folds: Sequence[np.ndarray] | None,
    per_shard: int,
) -> tuple[list[bytes], float]:
    """Every result group (fold-major with folds) and the value scale, as `encrypted_cross_covariance`
    returns them for the whole session, from partials of shards of `per_shard` ciphertexts."""
    total = executor.map_reduce(
        ShardTask(functools.partial(load_worker_state, keys), shard_partial),
        session_shards(layout, ciphertext_paths, y, y_scale_bits, folds, per_shard),
        functools.partial(add_partials, keys.parameter_set, keys.max_ciphertext_bytes),
    )
    replies: list[bytes] = []
    for part in total.replies:
        if part is None:  # every fold has samples, so some shard has each
            raise ValueError("a fold without samples has no result")
        replies.extend(part)
    return replies, total.scale
