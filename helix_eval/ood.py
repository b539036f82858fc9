"""OOD detection with a linear head's energy score (Liu et al., 2020; paper Appendix F).

energy(x) = -logsumexp(logits(x)): low on in-distribution inputs. We score "in-distribution-ness"
as -energy, so AUROC is P(score_ID > score_OOD) and FPR@95 is the fraction of OOD inputs accepted
at the threshold that keeps 95 % of in-distribution inputs.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def energy(logits: np.ndarray) -> np.ndarray:
    """-logsumexp over classes; a binary head's single logit z counts as logits (0, z)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1:
        z = np.stack([np.zeros_like(z), z], axis=1)
    scores: np.ndarray = -logsumexp(z, axis=1)
    return scores


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """Area under the ROC curve with in-distribution as the positive class (ties count half)."""
    s = np.concatenate([score_in, score_out])
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1, n0 = len(score_in), len(score_out)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fpr_at_tpr(score_in: np.ndarray, score_out: np.ndarray, tpr: float = 0.95) -> float:
    """Fraction of OOD scores >= the threshold that keeps ``tpr`` of the in-distribution scores."""
    ordered = np.sort(np.asarray(score_in, np.float64))
    keep = int(np.ceil(tpr * len(ordered) - 1e-9))  # the highest threshold that keeps >= tpr of ID inputs
    threshold = ordered[len(ordered) - keep]
    return float(np.mean(np.asarray(score_out) >= threshold))


def roc_points(score_in: np.ndarray, score_out: np.ndarray, points: int = 50) -> dict[str, list[float]]:
    """A down-sampled ROC curve (FPR, TPR) for plots."""
    thresholds = np.quantile(np.concatenate([score_in, score_out]), np.linspace(1, 0, points))
    return {
        "fpr": [float(np.mean(score_out >= t)) for t in thresholds],
        "tpr": [float(np.mean(score_in >= t)) for t in thresholds],
    }


def ood_report(logits_in: np.ndarray, logits_out: np.ndarray) -> dict[str, object]:
    """AUROC, FPR@95 and a ROC curve for one (head, ID set, OOD set)."""
    s_in, s_out = -energy(logits_in), -energy(logits_out)
    return {"auroc": auroc(s_in, s_out), "fpr95": fpr_at_tpr(s_in, s_out), "roc": roc_points(s_in, s_out)}
