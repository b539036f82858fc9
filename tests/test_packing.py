"""Packing layouts checked by exact negacyclic polynomial products in plain integers (no HE):
the outputs land where the layout says, and nothing else lands there."""
from __future__ import annotations

import numpy as np
import pytest

from shared_protocol.packing import CrossCovarianceLayout, LinearHeadLayout


def negacyclic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = len(a)
    full = np.convolve(a.astype(object), b.astype(object))
    out = full[:n].copy()
    out[: len(full) - n] -= full[n:]
    return out


@pytest.mark.parametrize("n,d,k", [(64, 16, 4), (64, 16, 3), (64, 10, 7), (64, 64, 2), (64, 33, 5), (128, 7, 20)])
def test_linear_head_layout_yields_exact_logits(n: int, d: int, k: int) -> None:
    rng = np.random.default_rng(d * 100 + k)
    x = rng.integers(-50, 50, size=(1, d))
    w = rng.integers(-50, 50, size=(d, k))
    lay = LinearHeadLayout(n=n, d=d, k=k)
    qpoly = lay.query_coefficients(x, 1.0)[0]
    wpolys = lay.weight_coefficients(w, 1.0)
    assert len(wpolys) == lay.ciphertexts_per_query
    got = np.zeros(k, dtype=object)
    for g, classes in enumerate(lay.class_groups()):
        prod = negacyclic(qpoly, wpolys[g])
        got[list(classes)] = prod[lay.output_positions(g)]
    assert np.array_equal(got.astype(np.int64), (x @ w)[0])


def test_linear_head_layout_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        LinearHeadLayout(n=64, d=65, k=2)
    lay = LinearHeadLayout(n=64, d=8, k=2)
    with pytest.raises(ValueError, match="dimension"):
        lay.query_coefficients(np.zeros((1, 9)), 1.0)
    with pytest.raises(ValueError, match="shape"):
        lay.weight_coefficients(np.zeros((8, 3)), 1.0)


@pytest.mark.parametrize("n,dim,samples", [(64, 5, 40), (64, 8, 8), (128, 9, 100), (64, 64, 3)])
def test_cross_covariance_layout_yields_exact_columns(n: int, dim: int, samples: int) -> None:
    rng = np.random.default_rng(n + dim + samples)
    x = rng.integers(-20, 20, size=(samples, dim))
    y = rng.integers(-20, 20, size=(samples, 6))
    lay = CrossCovarianceLayout(n=n, feature_dim=dim, num_samples=samples)
    acc = np.zeros((6, n), dtype=object)
    for c in range(lay.num_ciphertexts):
        rows = lay.sample_range(c)
        data = lay.data_coefficients(x[rows.start : rows.stop], 1.0)
        cols = lay.column_coefficients(y[rows.start : rows.stop], 1.0)
        for j in range(6):
            acc[j] += negacyclic(data, cols[j])
    got = acc[:, :dim].T.astype(np.int64)
    assert np.array_equal(got, x.T @ y)


def test_cross_covariance_layout_counts() -> None:
    lay = CrossCovarianceLayout(n=8192, feature_dim=256, num_samples=4064)
    assert (lay.block, lay.samples_per_ciphertext, lay.num_ciphertexts) == (256, 32, 127)
    assert lay.sample_range(126) == range(4032, 4064)
    wide = CrossCovarianceLayout(n=8192, feature_dim=384, num_samples=4096)
    assert (wide.block, wide.samples_per_ciphertext, wide.num_ciphertexts) == (512, 16, 256)


def test_fast_column_ntt_equals_full_ntt() -> None:
    """The m-class Vandermonde evaluation gives exactly the NTT of the column plaintext."""
    from shared_protocol.ckks import he_context
    from shared_protocol.modmath import to_residues, vandermonde

    he = he_context("ckks-n8192-q200")
    lay = CrossCovarianceLayout(n=he.n, feature_dim=200, num_samples=100)
    y = np.random.default_rng(4).normal(size=(lay.samples_per_ciphertext - 3, 5))
    for q in he.input_level.primes:
        idx, zpow = he.ntt(q).block_classes(lay.block)
        fast = vandermonde(to_residues(lay.column_values(y, 2.0**40), q), zpow, q)[:, idx]
        full = he.ntt(q).forward(to_residues(lay.column_coefficients(y, 2.0**40), q))
        assert np.array_equal(fast, full)
