"""CKA and SVCCA against their defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from helix_eval.similarity import fit_svcca, linear_cka, similarity_report, svcca


def _x(n: int = 600, d: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))


def test_cka_is_one_on_identical_inputs() -> None:
    x = _x()
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_invariant_to_orthogonal_transform_isotropic_scaling_and_shift() -> None:
    rng = np.random.default_rng(1)
    x, y = _x(seed=1), _x(seed=1)[:, :12] ** 2
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert linear_cka(x @ q * 7.0 + 3.0, y) == pytest.approx(linear_cka(x, y), rel=1e-9)


def test_cka_not_invariant_to_anisotropic_scaling() -> None:
    x = _x(seed=2)
    y = x @ np.diag(np.linspace(0.01, 10, 20))
    assert linear_cka(x, y) < 0.99


def test_cka_near_zero_for_independent_data() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4000, 10)), rng.normal(size=(4000, 10))
    assert linear_cka(x, y) < 0.02


def test_svcca_one_on_linearly_related_inputs_and_invariant_to_invertible_maps() -> None:
    rng = np.random.default_rng(4)
    x = _x(seed=4)
    a = rng.normal(size=(20, 20))
    assert svcca(x, x @ a + 1.0, k=20) == pytest.approx(1.0, abs=1e-3)
    model = fit_svcca(x[:400], (x @ a)[:400], k=20)
    np.testing.assert_allclose(model.correlations(x[400:], (x @ a)[400:]), 1.0, atol=1e-3)


def test_svcca_held_out_near_zero_for_independent_data_while_in_sample_overfits() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 64)), rng.normal(size=(300, 64))
    model = fit_svcca(x[:200], y[:200], k=32)
    assert np.mean(model.train_corrs) > 0.2  # in-sample CCA finds spurious correlation
    assert abs(np.mean(model.correlations(x[200:], y[200:]))) < 0.1


def test_similarity_report_shuffled_control_is_low_when_true_pairing_is_high() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(900, 8))
    x, y = z @ rng.normal(size=(8, 24)), z @ rng.normal(size=(8, 30)) + 0.1 * rng.normal(size=(900, 30))
    r = similarity_report(x[:600], y[:600], x[600:], y[600:], ks=(8,))
    assert r["cka_test"] > 0.4 and r["cka_test_shuffled"] < 0.05  # CKA is not invariant to general linear maps
    assert r["svcca8_test"] > 0.9 and abs(r["svcca8_test_shuffled"]) < 0.15
