"""Membership inference against the alignment map (paper Appendix J), scaled to this machine.

Question: the service's default alignment fits the map on the public corpus plus k of the head's
published in-distribution texts ("public + k in-distribution"). Can someone who holds the map tell
whether a given text was among those k? Shadow-model audit, as in the paper: for a target pair
(x_t, y_t), fit ``shadows`` maps whose k in-distribution rows include the target (IN) and as many
whose k rows do not (OUT), the other rows drawn at random from a pool; then train an attacker to
tell IN from OUT maps and score it by 5-fold cross-validation.

Two attackers:

* ``geometric``: logistic regression on geometric features of the map alone (Frobenius and
  spectral norms, leading and trailing singular values, bias norm), the paper's setup.
* ``residual``: a stronger attacker who also holds the target's embedding pair and looks at the
  map's residual on it (squared error and cosine of x_t M + b against y_t): a map fitted on a pair
  fits it better.

Chance is AUC 0.5; the paper reports 0.530 +- 0.113 for 100 IN / 100 OUT shadows over 100k
public + 128 in-distribution pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helix_alignment.methods import solve_ridge_scaled, sum_stats
from helix_alignment.ridge import AffineMap, SufficientStats, solve_ridge_from_stats

#: The paper's reported attack score (mean +- sd over targets), Appendix J.
PAPER_ATTACK = (0.530, 0.113)
ATTACK_FOLDS = 5


@dataclass(frozen=True)
class AuditConfig:
    """One audit cell: k in-distribution rows over a public corpus of a given size."""

    k: int = 128
    shadows: int = 100  # per side (IN and OUT)
    targets: int = 5
    method: str = "ridge_scaled"  # or "ridge" (the paper's lambda = 1e-4)
    seed: int = 0


def fit_map(stats: SufficientStats, method: str) -> AffineMap:
    if method == "ridge":
        return solve_ridge_from_stats(stats, 1e-4)
    if method == "ridge_scaled":
        return solve_ridge_scaled(stats)[0]
    raise ValueError(f"unknown audit method {method!r} (ridge, ridge_scaled)")


def geometric_features(m: AffineMap) -> np.ndarray:
    """What the map alone shows: norms and the spectrum's ends (no target data needed)."""
    sv = np.linalg.svd(m.weight, compute_uv=False)
    return np.array(
        [np.linalg.norm(m.weight), *sv[:5], float(sv.mean()), *sv[-3:], np.linalg.norm(m.bias), float(m.bias.mean())]
    )


def residual_features(m: AffineMap, x_t: np.ndarray, y_t: np.ndarray) -> np.ndarray:
    """The map's fit on the target pair: squared error and cosine of x_t M + b against y_t."""
    pred = m.apply(x_t[None, :])[0]
    cos = float(pred @ y_t / (np.linalg.norm(pred) * np.linalg.norm(y_t) or 1.0))
    return np.array([float(np.sum((pred - y_t) ** 2)), cos])


def attack_auc(features: np.ndarray, member: np.ndarray, seed: int = 0) -> dict[str, float]:
    """AUC and accuracy of a logistic-regression attacker, 5-fold stratified cross-validation."""
    member = np.asarray(member).astype(int)
    folds = StratifiedKFold(n_splits=ATTACK_FOLDS, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    prob = cross_val_predict(model, features, member, cv=folds, method="predict_proba")[:, 1]
    return {"auc": float(roc_auc_score(member, prob)), "accuracy": float(np.mean((prob > 0.5) == member))}


def shadow_maps(
    public: SufficientStats | None,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    target: int,
    cfg: AuditConfig,
    rng: np.random.Generator,
) -> tuple[list[AffineMap], np.ndarray]:
    """``cfg.shadows`` IN and as many OUT maps for one target row of the pool; labels 1 = IN."""
    others = np.setdiff1d(np.arange(len(x_pool)), [target])
    maps, member = [], []
    for label in (1, 0) * cfg.shadows:
        rows = rng.choice(others, size=cfg.k - label, replace=False)
        if label:
            rows = np.append(rows, target)
        part = SufficientStats.from_data(x_pool[rows], y_pool[rows])
        maps.append(fit_map(part if public is None else sum_stats([public, part]), cfg.method))
        member.append(label)
    return maps, np.array(member)


def audit(
    x_pub: np.ndarray, y_pub: np.ndarray, x_pool: np.ndarray, y_pool: np.ndarray, cfg: AuditConfig
) -> dict[str, Any]:
    """Both attackers on ``cfg.targets`` random targets from the pool; mean and sd over targets."""
    rng = np.random.default_rng(cfg.seed)
    public = SufficientStats.from_data(x_pub, y_pub) if len(x_pub) else None
    per_target: list[dict[str, Any]] = []
    for target in rng.choice(len(x_pool), size=cfg.targets, replace=False):
        maps, member = shadow_maps(public, x_pool, y_pool, int(target), cfg, rng)
        geo = np.stack([geometric_features(m) for m in maps])
        res = np.stack([residual_features(m, x_pool[target], y_pool[target]) for m in maps])
        per_target.append(
            {
                "target": int(target),
                "geometric": attack_auc(geo, member, cfg.seed),
                "residual": attack_auc(res, member, cfg.seed),
                "residual_gap": float(np.mean(res[member == 0, 0]) - np.mean(res[member == 1, 0])),
            }
        )
    out: dict[str, Any] = {
        "config": {
            "k": cfg.k,
            "public": int(len(x_pub)),
            "pool": int(len(x_pool)),
            "shadows_per_side": cfg.shadows,
            "targets": cfg.targets,
            "method": cfg.method,
            "seed": cfg.seed,
            "attack_folds": ATTACK_FOLDS,
        },
        "per_target": per_target,
    }
    for attacker in ("geometric", "residual"):
        for score in ("auc", "accuracy"):
            vals = np.array([t[attacker][score] for t in per_target])
            out[f"{attacker}_{score}"] = {
                "mean": float(vals.mean()),
                "sd": float(vals.std(ddof=1) if len(vals) > 1 else 0),
            }
        auc = out[f"{attacker}_auc"]
        # chance within two standard errors of the mean over targets (and the mean itself below 0.6)
        se = auc["sd"] / np.sqrt(len(per_target))
        out[f"{attacker}_at_chance"] = bool(abs(auc["mean"] - 0.5) <= max(2 * se, 0.02) and auc["mean"] < 0.6)
    return out
