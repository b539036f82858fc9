"""Map methods in helix_alignment.methods: each against a closed form or a defining property."""

from __future__ import annotations

import numpy as np
import pytest

from helix_alignment import fit_ridge, solve_ridge_from_stats
from helix_alignment.methods import (
    KAPPA_GRID,
    METHODS,
    cv_select,
    fold_stats,
    held_out_loss,
    relative_lambda,
    ridge_path_losses,
    solve_method,
    solve_ridge_scaled,
    stats_of,
)


def _data(n: int = 400, dx: int = 12, dy: int = 8, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) @ np.diag(np.linspace(0.2, 3, dx)) + 1.5
    y = x @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy)) - 2.0
    return x, y


def test_ridge_scaled_equals_ridge_with_relative_lambda() -> None:
    x, y = _data()
    s = stats_of(x, y)
    m, info = solve_ridge_scaled(s, 0.05)
    xc = x - x.mean(0)
    expected = 0.05 * np.trace(xc.T @ xc) / x.shape[1]
    assert info["lambda"] == pytest.approx(expected)
    ref = fit_ridge(x, y, expected)
    np.testing.assert_allclose(m.weight, ref.weight, atol=1e-10)
    np.testing.assert_allclose(m.bias, ref.bias, atol=1e-10)


def test_relative_lambda_is_scale_free() -> None:
    x, y = _data()
    a, _ = solve_method("ridge_scaled", stats_of(x, y), kappa=0.1)
    b, _ = solve_method("ridge_scaled", stats_of(10 * x, y), kappa=0.1)
    np.testing.assert_allclose(a.apply(x), b.apply(10 * x), atol=1e-8)  # the same map, in rescaled coordinates
    assert relative_lambda(stats_of(10 * x, y), 0.1) == pytest.approx(100 * relative_lambda(stats_of(x, y), 0.1))


def test_held_out_loss_is_squared_error_minus_constant() -> None:
    x, y = _data()
    m = fit_ridge(x[:300], y[:300], 0.1)
    part = stats_of(x[300:], y[300:])
    sse = float(np.sum((m.apply(x[300:]) - y[300:]) ** 2))
    assert held_out_loss(m, part) + float(np.sum(y[300:] ** 2)) == pytest.approx(sse, rel=1e-9)


def test_cv_from_fold_statistics_matches_explicit_cross_validation() -> None:
    x, y = _data(noise=3.0, n=120, dx=30)
    folds = fold_stats(x, y, 4, seed=1)
    order = np.random.default_rng(1).permutation(len(x))
    parts = np.array_split(order, 4)
    grid = KAPPA_GRID
    explicit = []
    for kappa in grid:
        total = 0.0
        for idx in parts:
            train = np.setdiff1d(order, idx)
            m, _ = solve_ridge_scaled(stats_of(x[train], y[train]), kappa)
            total += float(np.sum((m.apply(x[idx]) - y[idx]) ** 2))
        explicit.append(total)
    fast = ridge_path_losses(stats_of(x, y), folds, grid)
    const = float(np.sum(y**2))
    np.testing.assert_allclose(np.asarray(fast) + const, explicit, rtol=1e-7)
    best, generic = cv_select(stats_of(x, y), folds, lambda s, k: solve_ridge_scaled(s, k)[0], grid)
    assert best == grid[int(np.argmin(explicit))]
    np.testing.assert_allclose(generic, fast, rtol=1e-7)


def test_ridge_cv_prefers_more_shrinkage_for_noisier_data() -> None:
    clean, noisy = _data(noise=0.01, n=100, dx=40), _data(noise=20.0, n=100, dx=40)
    k_clean = solve_method("ridge_cv", stats_of(*clean), folds=fold_stats(*clean, 5))[1]["kappa"]
    k_noisy = solve_method("ridge_cv", stats_of(*noisy), folds=fold_stats(*noisy, 5))[1]["kappa"]
    assert k_noisy > k_clean


@pytest.mark.parametrize("dx,dy", [(8, 5), (5, 8), (6, 6)])
def test_procrustes_is_scaled_semi_orthogonal_and_recovers_a_rotation(dx: int, dy: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, dx))
    q, _ = np.linalg.qr(rng.normal(size=(max(dx, dy), max(dx, dy))))
    r = q[:dx, :dy]
    y = 2.5 * (x - x.mean(0)) @ r + 4.0
    m, info = solve_method("procrustes", stats_of(x, y))
    w = m.weight / info["scale"]
    gram = w.T @ w if dx >= dy else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(dx, dy)), atol=1e-8)
    if dx == dy:
        assert info["scale"] == pytest.approx(2.5, rel=1e-8)
        np.testing.assert_allclose(m.apply(x), y, atol=1e-8)


def test_reduced_rank_has_the_requested_rank_and_full_rank_is_ridge() -> None:
    x, y = _data(dy=10)
    s = stats_of(x, y)
    m, info = solve_method("reduced_rank", s, rank=3, kappa=0.01)
    assert np.linalg.matrix_rank(m.weight, tol=1e-8) == 3 == info["rank"]
    full, _ = solve_method("reduced_rank", s, rank=10, kappa=0.01)
    ridge, _ = solve_method("ridge_scaled", s, kappa=0.01)
    np.testing.assert_allclose(full.weight, ridge.weight, atol=1e-8)


def test_cca_full_rank_without_regularisation_is_least_squares() -> None:
    x, y = _data()
    s = stats_of(x, y)
    m, _ = solve_method("cca", s, yty=y.T @ y, kappa=1e-12)
    ols = solve_ridge_from_stats(s, 0.0)
    np.testing.assert_allclose(m.weight, ols.weight, atol=1e-5)
    low, info = solve_method("cca", s, yty=y.T @ y, rank=2)
    assert np.linalg.matrix_rank(low.weight, tol=1e-8) == 2 and 0 < info["mean_canonical_corr"] <= 1


def test_whitened_procrustes_fits_a_whitened_rotation() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2000, 6))
    a = rng.normal(size=(6, 6))
    x = z @ a  # correlated client features
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    y = 3.0 * z @ q  # provider = rotated, scaled whitened features
    m, _ = solve_method("whitened_procrustes", stats_of(x, y), kappa=1e-9)
    assert np.mean((m.apply(x) - y) ** 2) < 0.05 * np.mean(y**2)


def test_methods_declare_what_they_reveal() -> None:
    assert METHODS["ridge"].private and METHODS["ridge_scaled"].private and METHODS["procrustes"].private
    assert not METHODS["cca"].private and "yty" in METHODS["cca"].needs
    assert not METHODS["ridge_cv"].private and "fold_xty" in METHODS["ridge_cv"].needs
    x, y = _data()
    with pytest.raises(ValueError):
        solve_method("cca", stats_of(x, y))
    with pytest.raises(ValueError):
        solve_method("ridge_cv", stats_of(x, y))
    with pytest.raises(ValueError):
        solve_method("nope", stats_of(x, y))


def test_anchored_ridge_interpolates_least_squares_and_procrustes() -> None:
    x, y = _data(noise=1.0)
    s = stats_of(x, y)
    ols = solve_ridge_from_stats(s, 0.0)
    pro, _ = solve_method("procrustes", s)
    np.testing.assert_allclose(solve_method("anchored_ridge", s, kappa=1e-12)[0].weight, ols.weight, atol=1e-6)
    np.testing.assert_allclose(solve_method("anchored_ridge", s, kappa=1e9)[0].weight, pro.weight, atol=1e-5)
    folds = fold_stats(x, y, 4)
    fast = ridge_path_losses(s, folds, KAPPA_GRID, anchored=True)
    _, generic = cv_select(s, folds, lambda st, k: solve_method("anchored_ridge", st, kappa=k)[0], KAPPA_GRID)
    np.testing.assert_allclose(fast, generic, rtol=1e-7)
    m, info = solve_method("anchored_ridge_cv", s, folds=folds)
    assert info["kappa"] == KAPPA_GRID[int(np.argmin(fast))]
