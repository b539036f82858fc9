"""Ridge regression with a bias, from sufficient statistics.

Why statistics and not data: in secure alignment the client never sees Y_A, only Enc(X_B^T Y_A)
and the column sums 1^T Y_A. Together with the client's own X^T X and 1^T X this is everything the
centred ridge solve needs:

    W = (Xc^T Xc + lambda I)^-1 Xc^T Yc,   c = mean(Y) - mean(X) W,   Xc, Yc centred,

with Xc^T Xc = X^T X - n mx mx^T and Xc^T Yc = X^T Y - n mx my^T. Centring gives the bias without
penalising it (the intercept is not shrunk), as in the paper's affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SufficientStats:
    n: int
    xtx: np.ndarray  # (dB, dB)
    x_sum: np.ndarray  # (dB,)
    xty: np.ndarray  # (dB, dA)
    y_sum: np.ndarray  # (dA,)

    @classmethod
    def from_cross(cls, x: np.ndarray, xty: np.ndarray, y_sum: np.ndarray) -> SufficientStats:
        """What the client of the secure protocol holds: its own X, and X^T Y and 1^T Y decrypted."""
        x = np.asarray(x, dtype=np.float64)
        return cls(n=x.shape[0], xtx=x.T @ x, x_sum=x.sum(axis=0), xty=np.asarray(xty), y_sum=np.asarray(y_sum))

    @classmethod
    def from_data(cls, x: np.ndarray, y: np.ndarray) -> SufficientStats:
        """Plaintext statistics of both matrices (experiments, tests, reference fits)."""
        y = np.asarray(y, dtype=np.float64)
        return cls.from_cross(x, np.asarray(x, dtype=np.float64).T @ y, y.sum(axis=0))


@dataclass(frozen=True)
class AffineMap:
    """y ~= x @ weight + bias, mapping client embeddings into the provider's space."""

    weight: np.ndarray  # (dB, dA)
    bias: np.ndarray  # (dA,)

    def apply(self, x: np.ndarray) -> np.ndarray:
        mapped: np.ndarray = np.asarray(x, dtype=np.float64) @ self.weight + self.bias
        return mapped

    @property
    def source_dim(self) -> int:
        return int(self.weight.shape[0])

    @property
    def target_dim(self) -> int:
        return int(self.weight.shape[1])


def solve_ridge_from_stats(stats: SufficientStats, lam: float) -> AffineMap:
    if lam < 0:
        raise ValueError("ridge lambda must be >= 0")
    n = stats.n
    mx = stats.x_sum / n
    my = stats.y_sum / n
    sxx = stats.xtx - n * np.outer(mx, mx)
    sxy = stats.xty - n * np.outer(mx, my)
    a = sxx + lam * np.eye(sxx.shape[0])
    try:
        w = np.linalg.solve(a, sxy)
    except np.linalg.LinAlgError:
        w = np.linalg.lstsq(a, sxy, rcond=None)[0]  # singular (lambda = 0, n < d): minimum-norm answer
    return AffineMap(weight=w, bias=my - mx @ w)


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> AffineMap:
    """Plaintext fit on both matrices: the reference the secure path must reproduce."""
    return solve_ridge_from_stats(SufficientStats.from_data(x, y), lam)
