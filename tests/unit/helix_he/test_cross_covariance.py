"""The secure-alignment circuit in one process with real SEAL: correctness of the packed result,
reply hygiene (whole replies decrypted), re-randomisation, and refusal without the right keys."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tenseal.sealapi as seal

from helix_he.budget import Y_MAX_BITS, y_scale_bits_for
from helix_he.context import load_from_bytes
from helix_he.cross_covariance import (
    PackedResultShape,
    decrypt_cross_covariance,
    encrypt_alignment_data,
    encrypted_cross_covariance,
)
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.modmath import centered
from helix_he.packing import CrossCovarianceLayout

PSET = "ckks-n8192-q200"


def galois(keys: ClientKeys, stride_bits: int) -> seal.GaloisKeys:
    """What the provider loads from the client's registered Galois keys."""
    gk = seal.GaloisKeys()
    load_from_bytes(gk, keys.he.context, keys.galois_key_bytes(stride_bits))
    return gk


def raw_coefficients(keys: ClientKeys, blob: bytes) -> tuple[np.ndarray, int]:
    """Every coefficient of a reply as centred integers modulo its prime (no scaling)."""
    he = keys.he
    ct = he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=1 << 22)
    pt = seal.Plaintext()
    seal.Decryptor(he.context, keys.secret_key).decrypt(ct, pt)
    q = he.output_level.primes[0]
    return centered(he.ntt(q).inverse(he.plaintext_residues(pt)[0]), q), q


def second_component(keys: ClientKeys, blob: bytes) -> np.ndarray:
    ct = keys.he.ciphertext_from_bytes(blob, level=keys.he.output_level, max_bytes=1 << 22)
    return keys.he.ciphertext_data(ct)[1, 0]


@dataclass(frozen=True)
class ResultHeader:
    """What a result announces: its shape (`helix_he.cross_covariance.ResultShape`) and value scale."""

    feature_dim: int
    output_columns: int
    stride_bits: int
    value_scale: float


def run_alignment(
    keys: ClientKeys, rr: Rerandomizer, x: np.ndarray, y: np.ndarray, stride_bits: int
) -> tuple[CrossCovarianceLayout, list[bytes], ResultHeader]:
    he = keys.he
    lay = CrossCovarianceLayout.for_key(he.n, x.shape[1], x.shape[0], stride_bits)
    blobs = encrypt_alignment_data(keys, x, lay, 0, lay.num_ciphertexts)
    out, scale = encrypted_cross_covariance(
        he,
        lay,
        lambda c: he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=1 << 20),
        y,
        range(len(lay.result_groups(y.shape[1]))),
        rr,
        galois(keys, lay.stride_bits),
        y_scale_bits=y_scale_bits_for(y, lay.data_scale_bits),
    )
    return lay, out, ResultHeader(x.shape[1], y.shape[1], lay.stride_bits, scale)


@pytest.mark.parametrize("n,db,da,bits", [(300, 20, 6, 6), (200, 384, 40, 4), (64, 5, 3, 1)])
def test_cross_covariance_matches_plaintext_and_handles_zero_columns(
    keys: ClientKeys, rr: Rerandomizer, n: int, db: int, da: int, bits: int
) -> None:
    rng = np.random.default_rng(11 + n)
    x = rng.uniform(-1, 1, size=(n, db))
    y = rng.normal(size=(n, da))
    y[:, 2] = 0.0  # a dead dimension, as MiniLM has one
    lay, out, header = run_alignment(keys, rr, x, y, bits)
    assert len(out) == -(-da // lay.stride)  # m columns per reply
    got = decrypt_cross_covariance(keys, header, out)
    exp = x.T @ y
    assert np.max(np.abs(got - exp)) < 1e-5
    assert np.linalg.norm(got - exp) / np.linalg.norm(exp) < 2e-6
    assert np.max(np.abs(got[:, 2])) < 1e-9


def test_all_zero_group_still_yields_a_masked_reply(keys: ClientKeys, rr: Rerandomizer) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, size=(40, 8)), rng.normal(size=(40, 6))
    y[:, 4:] = 0.0  # the second reply (columns 4, 5 at m = 4) has nothing to carry
    lay, out, header = run_alignment(keys, rr, x, y, 2)
    assert len(out) == 2
    assert np.max(np.abs(decrypt_cross_covariance(keys, header, out) - x.T @ y)) < 1e-5
    raw, q = raw_coefficients(keys, out[1])
    others = np.delete(raw, lay.result_positions(2).reshape(-1)).astype(np.float64)
    assert int(np.sum(np.abs(others) < 2.0**50)) <= 40


def test_alignment_reply_carries_outputs_and_uniform_values_only(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Decrypt whole replies: outputs at a*m + j; every other coefficient (partial products of
    Y_A before the trace, known-noise sums beyond row D, slots of absent columns) uniform mod q."""
    rng = np.random.default_rng(5)
    n, db, da = 256, 24, 21  # 21 columns at m = 16: the second reply has 5 columns and 11 empty slots
    x = rng.uniform(-1, 1, size=(n, db))
    y = rng.normal(size=(n, da))
    lay, out, header = run_alignment(keys, rr, x, y, 4)
    assert lay.stride == 16 and len(out) == 2
    exp = x.T @ y
    pooled = []
    for g, blob in enumerate(out):
        raw, q = raw_coefficients(keys, blob)
        cols = lay.result_groups(da)[g]
        pos = lay.result_positions(len(cols))
        assert np.max(np.abs(raw[pos] / header.value_scale - exp[:, cols.start : cols.stop])) < 1e-5
        others = np.delete(raw, pos.reshape(-1)).astype(np.float64)
        assert others.size == keys.he.n - pos.size
        # Partial products or noise sums would be far below 2^50 (|sum| <= 256 * 5 at scale < 2^48);
        # uniform values mod q (~2^60) fall below 2^50 with probability ~2^-10.
        assert int(np.sum(np.abs(others) < 2.0**50)) <= 40
        pooled.append(others)
    allo = np.concatenate(pooled)
    counts = np.bincount(((allo / q + 0.5) * 16).astype(int).clip(0, 15), minlength=16)
    expected = len(allo) / 16
    assert float(((counts - expected) ** 2 / expected).sum()) < 60


def test_alignment_replies_are_rerandomised(keys: ClientKeys, rr: Rerandomizer) -> None:
    """The same upload computed twice: same outputs, fresh masks, and an unrelated c1 (without the
    fresh encryption of zero, c1 would be a deterministic function of the client's seeds and Y)."""
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-1, 1, size=(64, 8)), rng.normal(size=(64, 4))
    he = keys.he
    lay = CrossCovarianceLayout.for_key(he.n, 8, 64, 3)
    blobs = encrypt_alignment_data(keys, x, lay, 0, lay.num_ciphertexts)
    gk = galois(keys, 3)

    def once() -> bytes:
        return encrypted_cross_covariance(
            he,
            lay,
            lambda c: he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=1 << 20),
            y,
            range(1),
            rr,
            gk,
            y_scale_bits=20,
        )[0][0]

    r1, r2 = once(), once()
    a, _ = raw_coefficients(keys, r1)
    b, _ = raw_coefficients(keys, r2)
    pos = lay.result_positions(4).reshape(-1)
    assert np.allclose(a[pos], b[pos], atol=2**16)
    assert np.mean(np.delete(a, pos) == np.delete(b, pos)) < 0.01
    assert np.mean(second_component(keys, r1) == second_component(keys, r2)) < 0.01


def test_y_scale_keeps_sums_in_range() -> None:
    y = np.full((10, 3), 4.0)
    assert y_scale_bits_for(y, 23) == Y_MAX_BITS - 2  # bounded by |Y_int| <= 2^24
    big = np.full((16384, 3), 2.0**20)
    bits = y_scale_bits_for(big, 22)
    assert 16384 * 2.0 ** (20 + bits + 22) < 2.0**57
    assert y_scale_bits_for(np.zeros((5, 2)), 23) == Y_MAX_BITS


def test_galois_keys_for_a_smaller_stride_cannot_pack(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Keys for a smaller stride lack the finest automorphism: SEAL refuses, nothing is returned."""
    he = keys.he
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-1, 1, size=(32, 8)), rng.normal(size=(32, 4))
    lay = CrossCovarianceLayout.for_key(he.n, 8, 32, 3)
    blobs = encrypt_alignment_data(keys, x, lay, 0, lay.num_ciphertexts)
    with pytest.raises((RuntimeError, ValueError)):
        encrypted_cross_covariance(
            he,
            lay,
            lambda c: he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=1 << 20),
            y,
            range(1),
            rr,
            galois(keys, 2),
            y_scale_bits=20,
        )


def test_galois_keys_are_small_and_seeded(keys: ClientKeys) -> None:
    """Four keys (D = 384 at N = 8192) stay far below the 33.7 MB of a TenSEAL context with Galois keys."""
    assert len(keys.galois_key_bytes(4)) < 3_000_000
    assert keys.galois_key_bytes(0) == b""


def test_per_fold_results_match_each_folds_plaintext_product(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Fold k's replies decrypt to X_k^T Y_k exactly as the whole session's do to X^T Y; folds that
    start or end inside a data ciphertext only use their own samples."""
    rng = np.random.default_rng(21)
    n_corpus, n_head = 230, 37
    x = rng.uniform(-1, 1, size=(n_corpus + n_head, 12))
    y = rng.normal(size=(n_corpus + n_head, 9))
    he = keys.he
    lay = CrossCovarianceLayout.for_key(he.n, x.shape[1], x.shape[0], 4)
    # folds as the provider cuts them: corpus and head texts each in 3 contiguous blocks
    rows = [
        np.concatenate([c, h])
        for c, h in zip(
            np.array_split(np.arange(n_corpus), 3), np.array_split(n_corpus + np.arange(n_head), 3), strict=True
        )
    ]
    data = encrypt_alignment_data(keys, x, lay, 0, lay.num_ciphertexts)
    groups = range(len(lay.result_groups(y.shape[1])))
    out, scale = encrypted_cross_covariance(
        he,
        lay,
        lambda c: he.ciphertext_from_bytes(data[c], level=he.output_level, max_bytes=1 << 20),
        y,
        groups,
        rr,
        galois(keys, lay.stride_bits),
        y_scale_bits=y_scale_bits_for(y, lay.data_scale_bits),
        folds=rows,
    )
    assert len(out) == 3 * len(groups)
    header = PackedResultShape.of(lay, y.shape[1])
    total = np.zeros((x.shape[1], y.shape[1]))
    for k, r in enumerate(rows):
        got = decrypt_cross_covariance(keys, header, out[k * len(groups) : (k + 1) * len(groups)])
        assert np.max(np.abs(got - x[r].T @ y[r])) < 1e-5
        total += got
    assert np.max(np.abs(total - x.T @ y)) < 1e-5
