"""Coefficient packings: where each value sits in a CKKS plaintext polynomial.

Both circuits are built on one plaintext-ciphertext polynomial product. In Z[X]/(X^N + 1), if the
query holds x_i at X^i and the weight polynomial holds
W[i, j] at X^(j*d + d-1-i), the product's coefficient at X^(j*d + d-1) is exactly x . W[:, j]; every
other coefficient is a partial sum that must never reach the client (the provider randomises them).
The layouts are shared so client and provider agree on positions without negotiating.
The alignment result is additionally packed with a few automorphisms (Galois keys), see
`CrossCovarianceLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .budget import data_scale_bits, max_data_scale_bits


@dataclass(frozen=True)
class LinearHeadLayout:
    """x (d values) times W (d x k) + b -> k logits, in ceil(k / classes_per_ct) reply ciphertexts."""

    n: int  # ring dimension N
    d: int  # embedding dimension (query length)
    k: int  # number of classes

    def __post_init__(self) -> None:
        if not 1 <= self.d <= self.n:
            raise ValueError(f"embedding dimension {self.d} does not fit ring dimension {self.n}")
        if self.k < 1:
            raise ValueError("a head needs at least one class")

    @property
    def classes_per_ciphertext(self) -> int:
        # g*d <= N keeps every wrapped (negacyclic) term below position d-1, away from the outputs.
        return max(1, self.n // self.d)

    @property
    def ciphertexts_per_query(self) -> int:
        return -(-self.k // self.classes_per_ciphertext)

    def class_groups(self) -> list[range]:
        g = self.classes_per_ciphertext
        return [range(s, min(self.k, s + g)) for s in range(0, self.k, g)]

    def output_positions(self, group: int) -> np.ndarray:
        """Coefficient indices of the logits carried by reply ciphertext `group`."""
        size = len(self.class_groups()[group])
        return np.arange(size, dtype=np.int64) * self.d + self.d - 1

    def query_coefficients(self, x: np.ndarray, scale: float) -> np.ndarray:
        """Rows of queries (m, d) -> integer coefficient polynomials (m, N)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != self.d:
            raise ValueError(f"query has dimension {x.shape[1]}, the head expects {self.d}")
        out = np.zeros((x.shape[0], self.n), dtype=np.int64)
        out[:, : self.d] = np.round(x * scale).astype(np.int64)
        return out

    def batch_coefficients(self, x: np.ndarray, scale: float) -> np.ndarray:
        """Feature-major batch packing: queries (m <= N, d) -> d integer polynomials (d, N), feature i of
        query t at X^t. A head is then k integer combinations of these d polynomials, whose
        coefficient t is query t's logit: scalar multiply-adds only, no rotations, no products of
        polynomials, and every coefficient [0, m) is an output."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != self.d:
            raise ValueError(f"queries have dimension {x.shape[1]}, the head expects {self.d}")
        if not 1 <= x.shape[0] <= self.n:
            raise ValueError(f"a batch holds 1 to {self.n} queries, got {x.shape[0]}")
        out = np.zeros((self.d, self.n), dtype=np.int64)
        out[:, : x.shape[0]] = np.round(x.T * scale).astype(np.int64)
        return out

    def weight_coefficients(self, w: np.ndarray, scale: float) -> np.ndarray:
        """W (d, k) -> one integer polynomial per class group, shape (groups, N)."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.d, self.k):
            raise ValueError(f"weights have shape {w.shape}, expected {(self.d, self.k)}")
        groups = self.class_groups()
        out = np.zeros((len(groups), self.n), dtype=np.int64)
        for gi, classes in enumerate(groups):
            for local, j in enumerate(classes):
                out[gi, local * self.d : (local + 1) * self.d] = np.round(w[::-1, j] * scale).astype(np.int64)
        return out


MAX_STRIDE_BITS = 7  # at most 128 samples per alignment ciphertext: 7 Galois keys, ~4.9 MB seeded at N=8192


def next_pow2(v: int) -> int:
    return 1 << (max(1, v) - 1).bit_length()


def stride_bits_for(n: int, feature_dim: int) -> int:
    """log2 of the densest stride for D features in a ring of dimension N (capped): what the client
    asks Galois keys for."""
    return max(0, min(MAX_STRIDE_BITS, (n // next_pow2(feature_dim)).bit_length() - 1))


def trace_galois_elements(n: int, stride_bits: int) -> list[int]:
    """Galois elements 1 + N / 2^i (i < stride_bits): the automorphisms X -> X^(1 + N / 2^i) that the
    packing tree applies, one per tree level. Their subset products are exactly the automorphisms
    fixing Z[X^m] (m = 2^stride_bits), so the tree computes the trace onto Z[X^m]."""
    return [1 + n // (1 << i) for i in range(stride_bits)]


@dataclass(frozen=True)
class CrossCovarianceLayout:
    """Enc(X^T Y) for X (n x D, client, encrypted) and Y (n x d_A, provider, plaintext).

    Stride layout: a ciphertext holds m = 2^k samples (k = stride bits), sample t's feature a at
    X^(a*m + t) (features outer, samples inner; D*m <= N). The provider's plaintext for column b is
    sum_t Y[s_t, b] X^(-t). In the product, the terms t = t' sum to (X^T Y)[a, b] at X^(a*m); every
    cross-sample term (t != t') lands at a*m + (t - t'), which is not a multiple of m (also after the
    negacyclic wrap, since m divides N). Summed over all data ciphertexts, column b's polynomial Z_b
    holds column b of X^T Y on the multiples of m and partial products everywhere else.

    The trace onto Z[X^m] (sum of the m automorphisms X -> X^(1 + j*2N/m)) keeps exactly the
    multiples of m (times m) and annihilates the rest. The provider evaluates it as a packing tree
    over m columns (`helix_he.cross_covariance`): column g*m + j of X^T Y ends at X^(a*m + j) of
    result ciphertext g, so one reply carries m columns (D*m useful coefficients) instead of one.
    """

    n: int
    feature_dim: int  # D: the client's embedding dimension
    num_samples: int
    stride_bits: int  # log2 m; at most the Galois keys the client registered allow

    def __post_init__(self) -> None:
        if not 1 <= self.feature_dim <= self.n:
            raise ValueError(f"feature dimension {self.feature_dim} does not fit ring dimension {self.n}")
        if self.num_samples < 1:
            raise ValueError("alignment needs at least one sample")
        if not 0 <= self.stride_bits <= MAX_STRIDE_BITS or self.feature_dim << self.stride_bits > self.n:
            raise ValueError(
                f"stride 2^{self.stride_bits} does not fit {self.feature_dim} features in {self.n} coefficients"
            )

    @classmethod
    def for_key(cls, n: int, feature_dim: int, num_samples: int, key_stride_bits: int) -> CrossCovarianceLayout:
        """The layout both parties derive: the densest stride the features allow, capped by the keys."""
        return cls(n, feature_dim, num_samples, min(key_stride_bits, stride_bits_for(n, feature_dim)))

    @property
    def stride(self) -> int:
        return 1 << self.stride_bits

    @property
    def data_scale_bits(self) -> int:
        """log2 of the client's scale for X (`helix_he.budget.data_scale_bits`)."""
        return data_scale_bits(self.num_samples)

    @property
    def max_data_scale_bits(self) -> int:
        """The largest X scale the provider accepts (`helix_he.budget.max_data_scale_bits`)."""
        return max_data_scale_bits(self.num_samples)

    @property
    def samples_per_ciphertext(self) -> int:
        return self.stride

    @property
    def num_ciphertexts(self) -> int:
        return -(-self.num_samples // self.stride)

    def sample_range(self, ct_index: int) -> range:
        m = self.stride
        return range(ct_index * m, min(self.num_samples, (ct_index + 1) * m))

    def data_coefficients(self, x_chunk: np.ndarray, scale: float) -> np.ndarray:
        """Samples (<= m, D) -> one integer polynomial (N,) with x[t, a] at a*m + t."""
        x_chunk = np.asarray(x_chunk, dtype=np.float64)
        rows, dim = x_chunk.shape
        if dim != self.feature_dim or rows > self.stride:
            raise ValueError(f"chunk shape {x_chunk.shape} does not fit the layout")
        out = np.zeros((self.n // self.stride, self.stride), dtype=np.int64)
        out[:dim, :rows] = np.round(x_chunk * scale).astype(np.int64).T
        return out.reshape(-1)

    def column_coefficients(self, y_chunk: np.ndarray, scale: float) -> np.ndarray:
        """Provider rows for one ciphertext's samples (<= m, d_A) -> plaintexts (d_A, N) holding
        Y[s_t, b] at X^(-t) (reference and tests; the provider computes the products directly)."""
        y_int = np.round(np.asarray(y_chunk, dtype=np.float64) * scale).astype(np.int64)
        out = np.zeros((y_int.shape[1], self.n), dtype=np.int64)
        out[:, 0] = y_int[0] if len(y_int) else 0
        for t in range(1, y_int.shape[0]):
            out[:, self.n - t] = -y_int[t]
        return out

    # --- the packed result ------------------------------------------------------------------------
    def result_groups(self, output_columns: int) -> list[range]:
        """Columns carried by each result ciphertext: m consecutive columns per ciphertext."""
        m = self.stride
        return [range(s, min(output_columns, s + m)) for s in range(0, output_columns, m)]

    def result_positions(self, columns: int) -> np.ndarray:
        """(D, columns) coefficient indices a*m + j of (X^T Y)[a, g*m + j] in a result ciphertext."""
        return (
            np.arange(self.feature_dim, dtype=np.int64)[:, None] * self.stride
            + np.arange(columns, dtype=np.int64)[None, :]
        )

    def galois_elements(self) -> list[int]:
        return trace_galois_elements(self.n, self.stride_bits)
