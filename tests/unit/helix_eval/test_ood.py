"""Energy score, AUROC and FPR@95 against sklearn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from helix_eval.ood import auroc, energy, fpr_at_tpr, ood_report


def test_energy_is_negative_logsumexp() -> None:
    logits = np.array([[0.0, 0.0], [1.0, 2.0], [-3.0, 5.0]])
    np.testing.assert_allclose(energy(logits), -np.log(np.exp(logits).sum(1)))
    np.testing.assert_allclose(energy(np.array([0.0, 2.0])), -np.log([2.0, 1 + np.exp(2.0)]))  # binary: logits (0, z)


def test_auroc_hand_cases_and_ties() -> None:
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5
    assert auroc(np.array([2.0, 0.0]), np.array([1.0])) == 0.5


def test_auroc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 200).round(1)  # rounding makes ties
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[a, b])
    assert auroc(a, b) == pytest.approx(expected, abs=1e-12)


def test_fpr95_hand_case_and_against_sklearn_curve() -> None:
    s_in = np.arange(100, dtype=float)  # threshold keeping 95 % of ID = 5.0
    s_out = np.array([4.0, 5.0, 6.0, 50.0])
    assert fpr_at_tpr(s_in, s_out) == 0.75
    rng = np.random.default_rng(1)
    a, b = rng.normal(2, 1, 1000), rng.normal(0, 1, 1000)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(1000), np.zeros(1000)], np.r_[a, b])
    assert fpr_at_tpr(a, b) == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=2e-3)


def test_ood_report_separates_confident_from_flat_logits() -> None:
    rng = np.random.default_rng(2)
    confident = rng.normal(0, 1, (200, 4))
    confident[np.arange(200), rng.integers(0, 4, 200)] += 8  # noqa: E702
    flat = rng.normal(0, 0.1, (200, 4))
    r = ood_report(confident, flat)
    assert r["auroc"] > 0.95 and r["fpr95"] < 0.1 and len(r["roc"]["fpr"]) == len(r["roc"]["tpr"])
