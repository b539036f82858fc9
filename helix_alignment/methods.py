"""Map methods beyond fixed-lambda ridge, each solved from sufficient statistics.

Why from statistics: in secure alignment the client never sees Y_A. What each method needs
decides what the protocol must compute and who learns what (docs/alignment-science.md):

* ``xtx``, ``sums``: client-local (its own X^T X, 1^T X) and 1^T Y_A (already sent for the bias).
* ``xty``: Enc(X^T Y_A), decrypted by the client (the paper's protocol).
* ``fold_xty``: X_k^T Y_A,k and 1^T Y_A,k for K disjoint parts of the corpus: the client learns
  K cross-covariances instead of their sum (more about Y_A; each part must keep n_k >> d_B).
* ``yty``: Y_A^T Y_A, the provider's public-data covariance: only with the provider's opt-in.

Every method returns an :class:`~helix_alignment.ridge.AffineMap` and a small dict of what it
chose (lambda, rank, scale), which callers record with the map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .ridge import AffineMap, SufficientStats, solve_ridge_from_stats

#: Relative ridge strengths searched by cross-validation: lambda = kappa * tr(Sxx) / d.
KAPPA_GRID: tuple[float, ...] = tuple(float(k) for k in np.logspace(-3, 2, 11))
#: The client's default method: the best measured one that needs only the paper's statistics.
CLIENT_DEFAULT_METHOD = "ridge_scaled"
#: Default relative strength of ``ridge_scaled`` (chosen on held-out alignment data, see the docs).
DEFAULT_KAPPA = 1e-1


@dataclass(frozen=True)
class Centred:
    """Centred second moments: Sxx = Xc^T Xc, Sxy = Xc^T Yc, and the means."""

    n: int
    sxx: np.ndarray
    sxy: np.ndarray
    mx: np.ndarray
    my: np.ndarray


def centre(stats: SufficientStats) -> Centred:
    n = stats.n
    mx, my = stats.x_sum / n, stats.y_sum / n
    return Centred(n, stats.xtx - n * np.outer(mx, mx), stats.xty - n * np.outer(mx, my), mx, my)


def _affine(w: np.ndarray, c: Centred) -> AffineMap:
    return AffineMap(weight=w, bias=c.my - c.mx @ w)


def relative_lambda(stats: SufficientStats, kappa: float) -> float:
    """lambda = kappa * mean eigenvalue of Sxx: the same kappa means the same shrinkage for any
    embedding scale, dimension or corpus size (an absolute lambda such as the paper's 1e-4 does not)."""
    c = centre(stats)
    return float(kappa * np.trace(c.sxx) / c.sxx.shape[0])


def solve_ridge_scaled(stats: SufficientStats, kappa: float = DEFAULT_KAPPA) -> tuple[AffineMap, dict[str, Any]]:
    lam = relative_lambda(stats, kappa)
    return solve_ridge_from_stats(stats, lam), {"kappa": kappa, "lambda": lam}


def subtract(total: SufficientStats, part: SufficientStats) -> SufficientStats:
    """Statistics of the corpus without one part (they are sums, so they subtract)."""
    return SufficientStats(
        n=total.n - part.n,
        xtx=total.xtx - part.xtx,
        x_sum=total.x_sum - part.x_sum,
        xty=total.xty - part.xty,
        y_sum=total.y_sum - part.y_sum,
    )


def sum_stats(parts: Sequence[SufficientStats]) -> SufficientStats:
    """Statistics of the union of disjoint parts."""
    return SufficientStats(
        n=sum(p.n for p in parts),
        xtx=_array_sum(p.xtx for p in parts),
        x_sum=_array_sum(p.x_sum for p in parts),
        xty=_array_sum(p.xty for p in parts),
        y_sum=_array_sum(p.y_sum for p in parts),
    )


def _array_sum(arrays: Iterable[np.ndarray]) -> np.ndarray:
    # ``sum`` starts from the int 0, which the first array absorbs; callers pass at least one part.
    return cast(np.ndarray, sum(arrays))


def held_out_loss(m: AffineMap, part: SufficientStats) -> float:
    """Squared error of ``m`` on a part, minus the constant tr(Y^T Y) of that part.

    ||Y - XW - 1b||^2 = tr(Y^T Y) - 2 tr(W^T X^T Y) - 2 b.(1^T Y) + tr(W^T X^T X W) + 2 b.(W^T 1^T X) + n |b|^2.
    The first term does not depend on the map, so the argmin over candidate maps needs only the
    part's X^T X (client-local), X^T Y and 1^T Y: no Y^T Y.
    """
    w, b = m.weight, m.bias
    return float(
        -2 * np.sum(w * part.xty)
        - 2 * b @ part.y_sum
        + np.sum(w * (part.xtx @ w))
        + 2 * b @ (w.T @ part.x_sum)
        + part.n * b @ b
    )


def cv_select(
    total: SufficientStats,
    folds: Sequence[SufficientStats],
    fit: Callable[[SufficientStats, Any], AffineMap],
    grid: Sequence[Any],
) -> tuple[Any, list[float]]:
    """K-fold selection of a hyper-parameter from per-fold statistics only."""
    losses = []
    for value in grid:
        losses.append(sum(held_out_loss(fit(subtract(total, f), value), f) for f in folds))
    return grid[int(np.argmin(losses))], losses


def ridge_path_losses(
    total: SufficientStats, folds: Sequence[SufficientStats], grid: Sequence[float], anchored: bool = False
) -> list[float]:
    """Summed held-out losses of (anchored) ridge over a kappa grid: one eigendecomposition per fold
    serves every kappa (W = V diag(1/(e + lambda)) V^T (Sxy + lambda W0)), same numbers as
    :func:`cv_select` with :func:`solve_ridge_scaled` / :func:`solve_anchored_ridge`."""
    losses = np.zeros(len(grid))
    for part in folds:
        train = subtract(total, part)
        c = centre(train)
        vals, vecs = np.linalg.eigh((c.sxx + c.sxx.T) / 2)
        a = vecs.T @ c.sxy
        b = vecs.T @ solve_procrustes(train)[0].weight if anchored else np.zeros_like(a)
        scale = float(np.trace(c.sxx) / c.sxx.shape[0])
        for i, kappa in enumerate(grid):
            lam = kappa * scale
            w = vecs @ ((a + lam * b) / (np.maximum(vals, 0) + lam)[:, None])
            losses[i] += held_out_loss(_affine(w, c), part)
    return [float(v) for v in losses]


def solve_ridge_cv(
    stats: SufficientStats, folds: Sequence[SufficientStats], grid: Sequence[float] = KAPPA_GRID
) -> tuple[AffineMap, dict[str, Any]]:
    """Ridge with kappa chosen by K-fold validation on the alignment corpus (needs per-fold X^T Y)."""
    losses = ridge_path_losses(stats, folds, grid)
    kappa = grid[int(np.argmin(losses))]
    m, info = solve_ridge_scaled(stats, kappa)
    return m, {**info, "folds": len(folds), "grid": list(grid), "cv_losses": losses}


def solve_procrustes(stats: SufficientStats) -> tuple[AffineMap, dict[str, Any]]:
    """Scaled orthogonal Procrustes after centring: W = s R, R = U V^T from Sxy = U S V^T.

    R is semi-orthogonal (R^T R = I if d_B >= d_A, else R R^T = I), so the map only rotates
    (and embeds/projects) the client's space, then scales it by the least-squares optimal
    s = tr(R^T Sxy) / tr(R^T Sxx R). Needs Sxy and Sxx only; robust when data are scarce, but it
    cannot undo anisotropic differences between the spaces.
    """
    c = centre(stats)
    u, _, vt = np.linalg.svd(c.sxy, full_matrices=False)
    r = u @ vt
    denom = float(np.sum(r * (c.sxx @ r)))
    s = float(np.sum(r * c.sxy) / denom) if denom > 0 else 1.0
    return _affine(s * r, c), {"scale": s}


def solve_anchored_ridge(stats: SufficientStats, kappa: float = DEFAULT_KAPPA) -> tuple[AffineMap, dict[str, Any]]:
    """Ridge shrunk towards the scaled Procrustes map instead of towards zero.

    W = argmin ||Yc - Xc W||^2 + lambda ||W - W0||^2 = (Sxx + lambda I)^-1 (Sxy + lambda W0), W0 = s R
    from :func:`solve_procrustes`. Plain ridge shrinks unconstrained directions to 0, which collapses
    inputs unlike the corpus onto the corpus mean; anchoring keeps a rotation there instead. kappa -> 0
    gives least squares, kappa -> inf the Procrustes map. Needs Sxx and Sxy only.
    """
    c = centre(stats)
    w0 = solve_procrustes(stats)[0].weight
    lam = relative_lambda(stats, kappa)
    w = np.linalg.solve(c.sxx + lam * np.eye(c.sxx.shape[0]), c.sxy + lam * w0)
    return _affine(w, c), {"kappa": kappa, "lambda": lam}


def solve_anchored_ridge_cv(
    stats: SufficientStats, folds: Sequence[SufficientStats], grid: Sequence[float] = KAPPA_GRID
) -> tuple[AffineMap, dict[str, Any]]:
    """Anchored ridge with kappa chosen by K-fold validation (needs per-fold X^T Y)."""
    losses = ridge_path_losses(stats, folds, grid, anchored=True)
    kappa = grid[int(np.argmin(losses))]
    m, info = solve_anchored_ridge(stats, kappa)
    return m, {**info, "folds": len(folds), "grid": list(grid), "cv_losses": losses}


def _inv_sqrt(a: np.ndarray, eps: float) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    vals = np.maximum(vals, 0) + eps
    inv_sqrt: np.ndarray = (vecs / np.sqrt(vals)) @ vecs.T
    return inv_sqrt


def _sqrt(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    sqrt: np.ndarray = (vecs * np.sqrt(np.maximum(vals, 0))) @ vecs.T
    return sqrt


def solve_whitened_procrustes(stats: SufficientStats, kappa: float = DEFAULT_KAPPA) -> tuple[AffineMap, dict[str, Any]]:
    """Whiten the client's side (ridge-regularised Sxx^-1/2), then scaled Procrustes.

    W = s Sxx^-1/2 R, R = polar(Sxx^-1/2 Sxy): maps whitened client features onto the provider's
    space by a rotation and one scale. Needs Sxx and Sxy only (no provider covariance).
    """
    c = centre(stats)
    lam = relative_lambda(stats, kappa)
    wx = _inv_sqrt(c.sxx, lam)
    u, _, vt = np.linalg.svd(wx @ c.sxy, full_matrices=False)
    base = wx @ (u @ vt)
    denom = float(np.sum(base * (c.sxx @ base)))
    s = float(np.sum(base * c.sxy) / denom) if denom > 0 else 1.0
    return _affine(s * base, c), {"kappa": kappa, "lambda": lam, "scale": s}


def solve_reduced_rank(
    stats: SufficientStats, rank: int, kappa: float = DEFAULT_KAPPA
) -> tuple[AffineMap, dict[str, Any]]:
    """Reduced-rank ridge: project the ridge fit onto the top-``rank`` directions of its fitted values.

    Fitted-value covariance Yhat^T Yhat = W^T Sxx W is computable from client statistics, so
    this needs no Y^T Y. Rank-limiting discards directions the corpus cannot pin down.
    """
    m, info = solve_ridge_scaled(stats, kappa)
    c = centre(stats)
    fitted = m.weight.T @ c.sxx @ m.weight
    vals, vecs = np.linalg.eigh((fitted + fitted.T) / 2)
    top = vecs[:, np.argsort(vals)[::-1][:rank]]
    w = m.weight @ top @ top.T
    return _affine(w, c), {**info, "rank": int(min(rank, top.shape[1]))}


def solve_cca(
    stats: SufficientStats, yty: np.ndarray, rank: int | None = None, kappa: float = DEFAULT_KAPPA
) -> tuple[AffineMap, dict[str, Any]]:
    """Regularised CCA map (needs the provider's Y^T Y: opt-in only).

    Canonical directions from the whitened cross-covariance K = Sxx^-1/2 Sxy Syy^-1/2 = U P V^T;
    W = Sxx^-1/2 U_r P_r V_r^T Syy^1/2 keeps the ``rank`` most correlated directions (all of
    them and kappa -> 0 recover least squares).
    """
    c = centre(stats)
    syy = yty - c.n * np.outer(c.my, c.my)
    lam = relative_lambda(stats, kappa)
    wx = _inv_sqrt(c.sxx, lam)
    wy = _inv_sqrt(syy, 1e-9 * max(float(np.trace(syy)), 1e-12))
    u, p, vt = np.linalg.svd(wx @ c.sxy @ wy, full_matrices=False)
    r = len(p) if rank is None else min(rank, len(p))
    w = wx @ (u[:, :r] * p[:r]) @ vt[:r] @ _sqrt(syy)
    return _affine(w, c), {"kappa": kappa, "lambda": lam, "rank": r, "mean_canonical_corr": float(np.mean(p[:r]))}


@dataclass(frozen=True)
class MethodInfo:
    """A map method by name, with the statistics it needs (what the protocol must reveal)."""

    name: str
    needs: frozenset[str]
    summary: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def private(self) -> bool:
        """True if the paper's protocol (X^T Y and 1^T Y only) suffices."""
        return self.needs <= {"xtx", "sums", "xty"}


BASE = frozenset({"xtx", "sums", "xty"})
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("ridge", BASE, "ridge with a fixed absolute lambda (paper: 1e-4)", {"lam": 1e-4}),
        MethodInfo("ridge_scaled", BASE, "ridge, lambda = kappa * tr(Sxx)/d", {"kappa": DEFAULT_KAPPA}),
        MethodInfo(
            "ridge_cv", BASE | {"fold_xty"}, "ridge, kappa by K-fold validation on the alignment corpus", {"folds": 5}
        ),
        MethodInfo("procrustes", BASE, "centred, scaled orthogonal Procrustes"),
        MethodInfo("anchored_ridge", BASE, "ridge shrunk towards the Procrustes map", {"kappa": DEFAULT_KAPPA}),
        MethodInfo(
            "anchored_ridge_cv", BASE | {"fold_xty"}, "anchored ridge, kappa by K-fold validation", {"folds": 5}
        ),
        MethodInfo(
            "whitened_procrustes", BASE, "client-side whitening then scaled Procrustes", {"kappa": DEFAULT_KAPPA}
        ),
        MethodInfo("reduced_rank", BASE, "reduced-rank ridge", {"rank": 128, "kappa": DEFAULT_KAPPA}),
        MethodInfo(
            "cca",
            BASE | {"yty"},
            "regularised CCA map (provider covariance: opt-in)",
            {"rank": None, "kappa": DEFAULT_KAPPA},
        ),
    )
}


def solve_method(
    name: str,
    stats: SufficientStats,
    *,
    folds: Sequence[SufficientStats] | None = None,
    yty: np.ndarray | None = None,
    **params: Any,
) -> tuple[AffineMap, dict[str, Any]]:
    """Solve map method ``name`` (see :data:`METHODS`) with its default parameters overridden by ``params``."""
    if name not in METHODS:
        raise ValueError(f"unknown map method {name!r}; known: {sorted(METHODS)}")
    p = {**METHODS[name].params, **params}
    if name == "ridge":
        return solve_ridge_from_stats(stats, float(p["lam"])), {"lambda": float(p["lam"])}
    if name == "ridge_scaled":
        return solve_ridge_scaled(stats, float(p["kappa"]))
    if name == "ridge_cv":
        if not folds:
            raise ValueError("ridge_cv needs per-fold statistics (fold_xty)")
        return solve_ridge_cv(stats, folds, p.get("grid", KAPPA_GRID))
    if name == "procrustes":
        return solve_procrustes(stats)
    if name == "anchored_ridge":
        return solve_anchored_ridge(stats, float(p["kappa"]))
    if name == "anchored_ridge_cv":
        if not folds:
            raise ValueError("anchored_ridge_cv needs per-fold statistics (fold_xty)")
        return solve_anchored_ridge_cv(stats, folds, p.get("grid", KAPPA_GRID))
    if name == "whitened_procrustes":
        return solve_whitened_procrustes(stats, float(p["kappa"]))
    if name == "reduced_rank":
        return solve_reduced_rank(stats, int(p["rank"]), float(p["kappa"]))
    if yty is None:
        raise ValueError("cca needs the provider's Y^T Y (opt-in disclosure)")
    return solve_cca(stats, yty, p.get("rank"), float(p["kappa"]))


def stats_of(x: np.ndarray, y: np.ndarray) -> SufficientStats:
    """Plaintext sufficient statistics (experiments, tests; the secure path builds them from Enc(X^T Y))."""
    return SufficientStats.from_data(x, y)


def fold_stats(x: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> list[SufficientStats]:
    """Statistics of K disjoint random parts (what K protocol runs over disjoint sub-corpora would return)."""
    order = np.random.default_rng(seed).permutation(x.shape[0])
    return [stats_of(x[idx], y[idx]) for idx in np.array_split(order, k)]
