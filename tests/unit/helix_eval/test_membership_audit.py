"""The membership audit finds a planted signal and stays at chance when there is none."""

from __future__ import annotations

import numpy as np

from helix_eval.membership import AuditConfig, attack_auc, audit


def _pairs(n: int, a: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, a.shape[0]))
    return x, x @ a + noise * rng.normal(size=(n, a.shape[1]))


def test_planted_membership_signal_is_found() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 10))
    x_pub, y_pub = _pairs(60, a, 0.05, rng)
    # the in-distribution rows sit far off the public map: each one pulls the map towards itself
    x_pool, y_pool = _pairs(120, a, 3.0, rng)
    r = audit(x_pub, y_pub, x_pool, y_pool, AuditConfig(k=8, shadows=30, targets=3, seed=1))
    assert r["residual_auc"]["mean"] > 0.9 and not r["residual_at_chance"]
    assert r["config"]["shadows_per_side"] == 30 and len(r["per_target"]) == 3


def test_attacker_stays_near_chance_on_null_data() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 6))
    member = rng.permutation(np.repeat([0, 1], 200))  # labels carry no information about the features
    scores = attack_auc(features, member, seed=0)
    assert abs(scores["auc"] - 0.5) < 0.1
    assert abs(scores["accuracy"] - 0.5) < 0.1


def test_attacker_finds_a_feature_that_carries_membership() -> None:
    rng = np.random.default_rng(3)
    member = np.repeat([0, 1], 150)
    features = rng.normal(size=(300, 4))
    features[:, 2] += 1.5 * member
    assert attack_auc(features, member)["auc"] > 0.8
