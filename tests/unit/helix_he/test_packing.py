"""Packing layouts checked by exact negacyclic polynomial products in plain integers (no HE):
the outputs land where the layout says, and nothing else lands there."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he.packing import CrossCovarianceLayout, LinearHeadLayout


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


def automorphism(a: np.ndarray, k: int) -> np.ndarray:
    """sigma_k(a)(X) = a(X^k) in Z[X]/(X^N + 1), exactly."""
    n = len(a)
    out = np.zeros(n, dtype=object)
    for j, v in enumerate(a):
        e = (j * k) % (2 * n)
        if e < n:
            out[e] += v
        else:
            out[e - n] -= v
    return out


def pack_tree(polys: list[np.ndarray], m: int) -> np.ndarray:
    """The provider's packing tree on plain polynomials: combine(E, O) = E + X^s O + sigma(E - X^s O)."""
    n = len(polys[0])
    if len(polys) == 1:
        return polys[0]
    k = len(polys)
    even, odd = pack_tree(polys[0::2], m), pack_tree(polys[1::2], m)
    mono = np.zeros(n, dtype=object)
    mono[m // k] = 1
    shifted = negacyclic(odd, mono)
    return even + shifted + automorphism(even - shifted, 1 + k * n // m)


@pytest.mark.parametrize(
    "n,dim,samples,bits", [(64, 5, 40, 3), (64, 8, 8, 3), (128, 9, 100, 2), (64, 64, 3, 0), (64, 3, 50, 4)]
)
def test_cross_covariance_layout_yields_exact_packed_columns(n: int, dim: int, samples: int, bits: int) -> None:
    """Products summed over ciphertexts, then the packing tree: column g*m + j of X^T Y (times m) at
    a*m + j, and every coefficient beyond the outputs exactly zero (the trace removed all partial
    products)."""
    rng = np.random.default_rng(n + dim + samples)
    cols = 6
    x = rng.integers(-20, 20, size=(samples, dim))
    y = rng.integers(-20, 20, size=(samples, cols))
    lay = CrossCovarianceLayout(n=n, feature_dim=dim, num_samples=samples, stride_bits=bits)
    m = lay.stride
    z = [np.zeros(n, dtype=object) for _ in range(cols)]
    for c in range(lay.num_ciphertexts):
        rows = lay.sample_range(c)
        data = lay.data_coefficients(x[rows.start : rows.stop], 1.0)
        plain = lay.column_coefficients(y[rows.start : rows.stop], 1.0)
        for j in range(cols):
            z[j] = z[j] + negacyclic(data, plain[j])
    if bits:  # without the trace the polynomials do carry partial products off the outputs
        assert any(np.any(zj[np.arange(n) % m != 0] != 0) for zj in z)
    got = np.zeros((dim, cols), dtype=np.int64)
    for _g, group in enumerate(lay.result_groups(cols)):
        members = [z[b] for b in group] + [np.zeros(n, dtype=object)] * (m - len(group))
        packed = pack_tree(members, m)
        pos = lay.result_positions(len(group))
        got[:, group.start : group.stop] = packed[pos].astype(np.int64) // m
        assert np.all(packed[pos] % m == 0)
        assert not np.any(np.delete(packed, pos.reshape(-1)))
    assert np.array_equal(got, x.T @ y)


def test_cross_covariance_layout_counts() -> None:
    from helix_he.packing import stride_bits_for, trace_galois_elements

    assert stride_bits_for(8192, 384) == 4 and stride_bits_for(8192, 768) == 3 and stride_bits_for(8192, 256) == 5
    assert stride_bits_for(8192, 8) == 7  # capped: seven Galois keys at most
    lay = CrossCovarianceLayout.for_key(8192, 384, 4096, 4)
    assert (lay.stride, lay.samples_per_ciphertext, lay.num_ciphertexts) == (16, 16, 256)
    assert [len(g) for g in lay.result_groups(384)] == [16] * 24
    assert lay.galois_elements() == trace_galois_elements(8192, 4) == [8193, 4097, 2049, 1025]
    assert lay.sample_range(255) == range(4080, 4096)
    capped = CrossCovarianceLayout.for_key(8192, 100, 1000, 2)  # the key allows less than the features would
    assert capped.stride == 4 and capped.num_ciphertexts == 250
    assert lay.data_scale_bits == 23 and lay.max_data_scale_bits == 29
    with pytest.raises(ValueError, match="does not fit"):
        CrossCovarianceLayout(n=8192, feature_dim=768, num_samples=10, stride_bits=4)


def test_trace_elements_generate_exactly_the_subring_automorphisms() -> None:
    """Subset products of the tree's elements are the m automorphisms fixing Z[X^m], each once."""
    from itertools import combinations

    from helix_he.packing import trace_galois_elements

    n = 8192
    for bits in range(1, 8):
        elts = trace_galois_elements(n, bits)
        prods = set()
        for r in range(len(elts) + 1):
            for sub in combinations(elts, r):
                p = 1
                for e in sub:
                    p = p * e % (2 * n)
                prods.add(p)
        m = 1 << bits
        assert prods == {k for k in range(1, 2 * n, 2) if (k - 1) % (2 * n // m) == 0}
