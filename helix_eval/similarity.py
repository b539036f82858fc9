"""Representation similarity between two embedding spaces on shared inputs.

* Linear CKA (Kornblith et al., 2019), centred: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F).
  Invariant to orthogonal transforms and isotropic scaling of either side; 1 on identical inputs.
* SVCCA (Raghu et al., 2017): PCA each side to ``k`` dims, then CCA; the score is the mean
  canonical correlation. Directions are fitted on a training sample and, for the held-out score,
  applied unchanged to new inputs (in-sample CCA on few points overfits towards 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _centre(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    centred: np.ndarray = a - a.mean(axis=0)
    return centred


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Centred linear CKA between row-aligned matrices x (n, d1) and y (n, d2)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("CKA needs the same inputs on both sides (equal row counts)")
    xc, yc = _centre(x), _centre(y)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    denom = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(cross / denom) if denom > 0 else 0.0


@dataclass(frozen=True)
class SvccaModel:
    """PCA and CCA directions fitted on one sample, reusable on others."""

    mean_x: np.ndarray
    mean_y: np.ndarray
    proj_x: np.ndarray  # (d1, r): PCA then CCA directions for x
    proj_y: np.ndarray  # (d2, r)
    train_corrs: np.ndarray

    def correlations(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Correlation of each canonical pair on (possibly new) row-aligned inputs."""
        a = (np.asarray(x, dtype=np.float64) - self.mean_x) @ self.proj_x
        b = (np.asarray(y, dtype=np.float64) - self.mean_y) @ self.proj_y
        a, b = a - a.mean(0), b - b.mean(0)
        den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
        corrs: np.ndarray = np.divide(np.sum(a * b, axis=0), den, out=np.zeros(a.shape[1]), where=den > 0)
        return corrs


def _pca(a: np.ndarray, k: int) -> np.ndarray:
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = min(k, int(np.sum(s > s[0] * 1e-10)) if s.size else 0)
    return vt[:keep].T


def _whitener(a: np.ndarray, eps: float) -> np.ndarray:
    cov = a.T @ a
    vals, vecs = np.linalg.eigh(cov)
    whitener: np.ndarray = (vecs / np.sqrt(np.maximum(vals, 0) + eps * max(float(vals.max()), 1e-12))) @ vecs.T
    return whitener


def fit_svcca(x: np.ndarray, y: np.ndarray, k: int = 64, eps: float = 1e-8) -> SvccaModel:
    """Fit PCA (to ``k`` dims per side) + CCA on row-aligned x, y."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("SVCCA needs the same inputs on both sides (equal row counts)")
    mx, my = np.asarray(x, np.float64).mean(0), np.asarray(y, np.float64).mean(0)
    xc, yc = np.asarray(x, np.float64) - mx, np.asarray(y, np.float64) - my
    px, py = _pca(xc, k), _pca(yc, k)
    a, b = xc @ px, yc @ py
    wa, wb = _whitener(a, eps), _whitener(b, eps)
    u, s, vt = np.linalg.svd(wa @ a.T @ b @ wb, full_matrices=False)
    r = min(px.shape[1], py.shape[1])
    return SvccaModel(mx, my, px @ wa @ u[:, :r], py @ wb @ vt[:r].T, np.clip(s[:r], 0, 1))


def svcca(x: np.ndarray, y: np.ndarray, k: int = 64) -> float:
    """In-sample SVCCA score: mean canonical correlation after PCA to ``k`` dims."""
    return float(np.mean(fit_svcca(x, y, k).train_corrs))


def similarity_report(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    ks: tuple[int, ...] = (64, 128),
    seed: int = 0,
) -> dict[str, float]:
    """CKA and SVCCA on train and held-out inputs, each beside a shuffled-pairs control."""
    rng = np.random.default_rng(seed)
    shuf_tr, shuf_te = rng.permutation(len(y_train)), rng.permutation(len(y_test))
    out = {
        "cka_train": linear_cka(x_train, y_train),
        "cka_test": linear_cka(x_test, y_test),
        "cka_test_shuffled": linear_cka(x_test, y_test[shuf_te]),
    }
    for k in ks:
        model = fit_svcca(x_train, y_train, k)
        ctrl = fit_svcca(x_train, y_train[shuf_tr], k)
        out[f"svcca{k}_train"] = float(np.mean(model.train_corrs))
        out[f"svcca{k}_test"] = float(np.mean(model.correlations(x_test, y_test)))
        out[f"svcca{k}_train_shuffled"] = float(np.mean(ctrl.train_corrs))
        out[f"svcca{k}_test_shuffled"] = float(np.mean(ctrl.correlations(x_test, y_test[shuf_te])))
    return out
