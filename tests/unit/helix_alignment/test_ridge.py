"""The ridge affine map from sufficient statistics against independent closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from helix_alignment import SufficientStats, fit_ridge, solve_ridge_from_stats


def data(n: int = 300, db: int = 12, da: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, db)) + 3.0
    y = x @ rng.normal(size=(db, da)) + rng.normal(size=da) * 5 + 0.1 * rng.normal(size=(n, da))
    return x, y


@pytest.mark.parametrize("lam", [0.0, 1e-4, 0.5, 10.0])
def test_matches_closed_form_with_unpenalised_bias(lam: float) -> None:
    x, y = data()
    m = fit_ridge(x, y, lam)
    # Closed form on the augmented design with a penalty on W only: [W; c] = (A^T A + P)^-1 A^T Y.
    a = np.hstack([x, np.ones((x.shape[0], 1))])
    p = lam * np.eye(a.shape[1])
    p[-1, -1] = 0.0
    wc = np.linalg.solve(a.T @ a + p, a.T @ y)
    assert np.allclose(m.weight, wc[:-1], atol=1e-8)
    assert np.allclose(m.bias, wc[-1], atol=1e-8)


def test_matches_sklearn_ridge() -> None:
    x, y = data(seed=3)
    m = fit_ridge(x, y, 2.0)
    ref = Ridge(alpha=2.0, fit_intercept=True).fit(x, y)
    assert np.allclose(m.weight, ref.coef_.T, atol=1e-8)
    assert np.allclose(m.bias, ref.intercept_, atol=1e-8)
    assert np.allclose(m.apply(x), ref.predict(x), atol=1e-8)


def test_stats_the_client_has_reproduce_the_direct_fit() -> None:
    """What the client holds after secure alignment (its own X, the decrypted X^T Y and the column
    sums 1^T Y) is enough to reproduce the plaintext fit."""
    x, y = data(seed=5)
    stats = SufficientStats(n=x.shape[0], xtx=x.T @ x, x_sum=x.sum(0), xty=x.T @ y, y_sum=y.sum(0))
    m = solve_ridge_from_stats(stats, 1e-3)
    ref = fit_ridge(x, y, 1e-3)
    assert np.allclose(m.weight, ref.weight) and np.allclose(m.bias, ref.bias)


def test_negative_lambda_is_rejected() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="lambda"):
        fit_ridge(x, y, -1.0)
