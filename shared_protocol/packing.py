"""Coefficient packings: where each value sits in a CKKS plaintext polynomial.

Both circuits here are one plaintext-ciphertext polynomial product, depth 1, no rotations and so no
Galois keys. In Z[X]/(X^N + 1), if the query holds x_i at X^i and the weight polynomial holds
W[i, j] at X^(j*d + d-1-i), the product's coefficient at X^(j*d + d-1) is exactly x . W[:, j]; every
other coefficient is a partial sum that must never reach the client (the provider randomises them).
The layouts are shared so client and provider agree on positions without negotiating.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class CrossCovarianceLayout:
    """Enc(X^T Y) for X (n x D, client, encrypted) and Y (n x d_A, provider, plaintext).

    Samples sit in blocks of B = next_pow2(D) coefficients; a ciphertext holds m = N / B samples,
    sample t's features at X^(t*B + a). The plaintext for output column b holds Y[s_t, b] at
    X^(-t*B) (negacyclic: -X^(N - t*B) for t > 0). Their product has sum_t X[s_t, a] * Y[s_t, b] at
    X^a for a < D; cross-sample terms land at (t' - t)*B + a, which is >= B or wraps to
    >= N - (m-1)*B = B, never on an output. Summing the products over all ciphertexts gives column
    b of X^T Y in coefficients [0, D).

    Why a power-of-two block: the column plaintext is then a polynomial in X^B, whose NTT takes only
    m distinct values, so the provider builds it with an m x m product instead of a full NTT.
    """

    n: int
    feature_dim: int  # D: the client's embedding dimension
    num_samples: int

    def __post_init__(self) -> None:
        if not 1 <= self.feature_dim <= self.n:
            raise ValueError(f"feature dimension {self.feature_dim} does not fit ring dimension {self.n}")
        if self.num_samples < 1:
            raise ValueError("alignment needs at least one sample")

    @property
    def block(self) -> int:
        return 1 << (self.feature_dim - 1).bit_length()

    @property
    def samples_per_ciphertext(self) -> int:
        return self.n // self.block

    @property
    def num_ciphertexts(self) -> int:
        return -(-self.num_samples // self.samples_per_ciphertext)

    def sample_range(self, ct_index: int) -> range:
        m = self.samples_per_ciphertext
        return range(ct_index * m, min(self.num_samples, (ct_index + 1) * m))

    def data_coefficients(self, x_chunk: np.ndarray, scale: float) -> np.ndarray:
        """Samples (<= m, D) -> one integer polynomial (N,)."""
        x_chunk = np.asarray(x_chunk, dtype=np.float64)
        m, dim = x_chunk.shape
        if dim != self.feature_dim or m > self.samples_per_ciphertext:
            raise ValueError(f"chunk shape {x_chunk.shape} does not fit the layout")
        out = np.zeros((self.samples_per_ciphertext, self.block), dtype=np.int64)
        out[:m, :dim] = np.round(x_chunk * scale).astype(np.int64)
        return out.reshape(-1)

    def column_values(self, y_chunk: np.ndarray, scale: float) -> np.ndarray:
        """Provider rows for one ciphertext's samples (<= m, d_A) -> (d_A, m) integers v[b, t], the
        coefficient of X^(-t*B) in column b's plaintext (zero for absent samples)."""
        y_chunk = np.asarray(y_chunk, dtype=np.float64)
        out = np.zeros((y_chunk.shape[1], self.samples_per_ciphertext), dtype=np.int64)
        out[:, : y_chunk.shape[0]] = np.round(y_chunk * scale).astype(np.int64).T
        return out

    def column_coefficients(self, y_chunk: np.ndarray, scale: float) -> np.ndarray:
        """The same plaintexts as full coefficient vectors (d_A, N) (reference and tests)."""
        vals = self.column_values(y_chunk, scale)
        out = np.zeros((vals.shape[0], self.n), dtype=np.int64)
        out[:, 0] = vals[:, 0]
        for t in range(1, vals.shape[1]):
            out[:, self.n - t * self.block] = -vals[:, t]
        return out
