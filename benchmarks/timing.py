"""Small timing helpers (wall clock, time.perf_counter)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def summary_ms(seconds: list[float]) -> dict[str, float | int]:
    """p50 / p95 / mean / min / max in milliseconds of a list of durations in seconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "runs": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }
