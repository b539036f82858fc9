"""The client-probe bound: a CV-tuned probe on the train split, and the verdict each run gets."""

from __future__ import annotations

import numpy as np

from helix_eval.bounds import best_probe_accuracy
from helix_eval.report import bounds_table


def test_probe_finds_signal_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 20))
    y = (x[:, 3] + 0.3 * rng.normal(size=600) > 0).astype(int)
    acc, c = best_probe_accuracy(x[:400], y[:400], x[400:], y[400:])
    assert acc > 0.85 and c > 0
    noise_acc, _ = best_probe_accuracy(rng.normal(size=(400, 20)), y[:400], rng.normal(size=(200, 20)), y[400:])
    assert noise_acc < 0.65


def _row(baseline: float, probe: float, mapped: float) -> dict[str, object]:
    return {
        "pair": "A <- B",
        "dataset": "d",
        "train": 10,
        "baseline_accuracy": baseline,
        "source_probe_accuracy": probe,
        "source_probe_c": 1.0,
        "target_probe_accuracy": baseline,
        "reachable_gap": baseline - probe,
        "in_distribution_accuracy": {"ridge": mapped, "ridge_cv": mapped - 0.01},
    }


def test_verdicts() -> None:
    table = bounds_table([_row(0.80, 0.82, 0.79), _row(0.80, 0.70, 0.70), _row(0.80, 0.81, 0.75)]).splitlines()
    assert table[2].endswith("| met |")
    assert table[3].endswith("| out of reach: client probe below target |")
    assert table[4].endswith("| missed |")
