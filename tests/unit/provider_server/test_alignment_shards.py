"""The provider's sharded cross-covariance (`provider_server.services.alignment_shards`) against the
whole-session computation its worker pool runs, with real SEAL: decrypted, the sum of the shards'
partials equals the whole result and X^T Y, on the local executor and on the session's Ray cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tenseal.sealapi as seal

from helix_he.budget import y_scale_bits_for
from helix_he.context import load_from_bytes
from helix_he.cross_covariance import PackedResultShape, decrypt_cross_covariance, encrypt_alignment_data
from helix_he.cross_covariance import encrypted_cross_covariance as whole_cross_covariance
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.packing import CrossCovarianceLayout
from helix_shards import LocalExecutor, ShardExecutor
from helix_shards.ray_executor import RayExecutor
from provider_server.services.alignment_shards import SessionKeys, shard_bounds, sharded_cross_covariance
from shared_protocol.folds import fold_rows

PSET = "ckks-n8192-q200"
MAX_BYTES = 1 << 21
STRIDE_BITS = 3  # m = 8 samples per ciphertext


class Session:
    """A client's encrypted X on disk, as the provider's session files hold it, and the provider's Y."""

    def __init__(self, keys: ClientKeys, folder: Path, samples: int, feature_dim: int, columns: int) -> None:
        rng = np.random.default_rng(samples)
        self.x = rng.uniform(-1, 1, size=(samples, feature_dim))
        self.y = rng.normal(size=(samples, columns))
        self.layout = CrossCovarianceLayout.for_key(keys.he.n, feature_dim, samples, STRIDE_BITS)
        blobs = encrypt_alignment_data(keys, self.x, self.layout, 0, self.layout.num_ciphertexts)
        self.paths = []
        for i, blob in enumerate(blobs):
            path = folder / f"{i:06d}.ct"
            path.write_bytes(blob)
            self.paths.append(str(path))
        self.y_bits = y_scale_bits_for(self.y, self.layout.data_scale_bits)
        self.keys = SessionKeys(
            PSET, keys.public_key_bytes(), keys.galois_key_bytes(self.layout.stride_bits), MAX_BYTES
        )

    def whole(self, keys: ClientKeys, folds: list[np.ndarray] | None) -> tuple[list[bytes], float]:
        """What the provider's worker pool computes: every group over all ciphertexts at once."""
        he = keys.he
        gk = seal.GaloisKeys()
        load_from_bytes(gk, he.context, self.keys.galois_keys)
        return whole_cross_covariance(
            he,
            self.layout,
            lambda c: he.ciphertext_from_bytes(
                Path(self.paths[c]).read_bytes(), level=he.output_level, max_bytes=MAX_BYTES
            ),
            self.y,
            range(len(self.layout.result_groups(self.y.shape[1]))),
            Rerandomizer(he, keys.public_key()),
            gk,
            y_scale_bits=self.y_bits,
            folds=folds,
        )

    def sharded(
        self, executor: ShardExecutor, folds: list[np.ndarray] | None, per_shard: int
    ) -> tuple[list[bytes], float]:
        return sharded_cross_covariance(
            executor, self.keys, self.layout, self.paths, self.y, self.y_bits, folds, per_shard
        )

    def decrypt(self, keys: ClientKeys, blobs: list[bytes], parts: int) -> list[np.ndarray]:
        shape = PackedResultShape.of(self.layout, self.y.shape[1])
        size = len(blobs) // parts
        return [decrypt_cross_covariance(keys, shape, blobs[k * size : (k + 1) * size]) for k in range(parts)]


def test_shard_bounds_cover_every_ciphertext_once() -> None:
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(3, 8) == [(0, 3)]


def test_sum_of_local_shards_equals_the_whole_computation(keys: ClientKeys, tmp_path: Path) -> None:
    s = Session(keys, tmp_path, samples=75, feature_dim=20, columns=11)  # 10 ciphertexts, the last short
    whole, whole_scale = s.whole(keys, None)
    sharded, scale = s.sharded(LocalExecutor(), None, per_shard=3)
    assert scale == whole_scale and len(sharded) == len(whole) == 2
    (got,), (ref,) = s.decrypt(keys, sharded, 1), s.decrypt(keys, whole, 1)
    exact = s.x.T @ s.y
    assert np.max(np.abs(ref - exact)) < 1e-5
    assert np.max(np.abs(got - exact)) < 1e-5  # four shards' noise instead of one: still far below 1e-5
    assert np.max(np.abs(got - ref)) < 1e-5


def test_per_fold_shards_equal_the_whole_per_fold_result(keys: ClientKeys, tmp_path: Path) -> None:
    """Folds are contiguous blocks, so most shards touch only some folds; the sum has every one."""
    s = Session(keys, tmp_path, samples=90, feature_dim=12, columns=9)
    folds = fold_rows(80, 10, 3)
    whole, _ = s.whole(keys, folds)
    sharded, _ = s.sharded(LocalExecutor(), folds, per_shard=2)
    assert len(sharded) == len(whole)
    got, ref = s.decrypt(keys, sharded, 3), s.decrypt(keys, whole, 3)
    for rows, g, r in zip(folds, got, ref, strict=True):
        np.testing.assert_allclose(g, s.x[rows].T @ s.y[rows], atol=1e-5)
        np.testing.assert_allclose(g, r, atol=1e-5)


@pytest.mark.parametrize("with_folds", [False, True])
def test_ray_shards_equal_local_shards(keys: ClientKeys, tmp_path: Path, ray_cluster: object, with_folds: bool) -> None:
    s = Session(keys, tmp_path, samples=64, feature_dim=16, columns=10)
    folds = fold_rows(60, 4, 2) if with_folds else None
    local, local_scale = s.sharded(LocalExecutor(), folds, per_shard=3)
    on_ray, ray_scale = s.sharded(RayExecutor(workers=2), folds, per_shard=3)
    assert ray_scale == local_scale and len(on_ray) == len(local)
    parts = 2 if with_folds else 1
    for g, r in zip(s.decrypt(keys, on_ray, parts), s.decrypt(keys, local, parts), strict=True):
        np.testing.assert_allclose(g, r, atol=1e-5)
    exact = s.x.T @ s.y if folds is None else s.x[folds[0]].T @ s.y[folds[0]]
    np.testing.assert_allclose(s.decrypt(keys, on_ray, parts)[0], exact, atol=1e-5)
