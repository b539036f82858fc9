"""Two extraction attacks by a client holding its own keys, one per output mode, with their progress measured.

Why these two: each is the cheapest attack we know for its mode, so the query counts they need are what a
budget has to stay below (upper bounds on an attacker's cost: a better attack can only need fewer).

* `logits`: the zero vector and the d unit vectors in one feature-major batch give b and W exactly (up to
  the provider's noise); then the unit vectors again, scaled by the largest power of two the headroom
  allows (the provider cannot check |x|), which divides the flooding by that factor, with the zero vector
  repeated in the rest of that request to average the flooding off the bias.
* `ranking`: the signs of the replies are, for every pair (i, j), a membership oracle of the halfspace
  z_i > z_j. Bisection along random segments finds points on each boundary z_0 = z_j; a hyperplane through
  them gives (W[:, 0] - W[:, j], b_0 - b_j) up to a positive scale; a few points on the boundaries
  z_1 = z_j tie those scales together; and repeating one query many times pins the last, global scale:
  the reply is r * delta with r log-uniform on [1, 2^8), so the smallest and largest of m answers
  bracket delta ever more tightly. The queries are far larger than embeddings (|x| unchecked), which
  shrinks the flooding relative to the logits, exactly as in logits mode.

A ranking reply never depends on a common shift of the columns of W (or of b), so the error of W is measured
on the centred head (each row of [W; b] minus its mean over the classes) in both modes: what any answer
of either mode determines. A logits attack recovers W itself, and its uncentred error is reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helix_he.budget import RANKING_FACTOR_BITS
from helix_he.linear_head import ranking_pairs

from .extraction_oracle import MAX_QUERIES_PER_REQUEST, HeadOracle

#: |logit| stays below 2^11 at the pinned scales (budget.py); attacks aim at 2^9 to keep a margin.
HEADROOM_BITS = 9


@dataclass
class Truth:
    """What the benchmark knows and the attacker does not: the head and held-out inputs."""

    weight: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    held_out: np.ndarray  # (n, d) inputs on which surrogate decisions are compared

    def __post_init__(self) -> None:
        self.labels = np.argmax(self.held_out @ self.weight + self.bias, axis=1)
        self.centred = centred(self.weight, self.bias)

    def agreement(self, weight: np.ndarray, bias: np.ndarray) -> float:
        """Fraction of held-out inputs on which a surrogate head decides like the real one."""
        return float(np.mean(np.argmax(self.held_out @ weight + bias, axis=1) == self.labels))

    def relative_error(self, weight: np.ndarray, bias: np.ndarray, *, fit_scale: bool = False) -> float:
        """||centred W_hat - centred W|| / ||centred W|| over the weight rows (the bias row excluded);
        `fit_scale` first multiplies the estimate by its best positive scale (directions only)."""
        est, true = centred(weight, bias)[:-1], self.centred[:-1]
        if fit_scale:
            est = est * max(float(np.vdot(est, true)) / max(float(np.vdot(est, est)), 1e-300), 0.0)
        return float(np.linalg.norm(est - true) / np.linalg.norm(true))


def centred(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[W; b] (d + 1, k) minus each row's mean over the classes."""
    stacked = np.vstack([np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64).reshape(1, -1)])
    out: np.ndarray = stacked - stacked.mean(axis=1, keepdims=True)
    return out


@dataclass
class Progress:
    """Checkpoints of one attack: queries and seconds spent so far and what the estimate achieves."""

    truth: Truth
    oracle: HeadOracle
    budget: int
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def record(self, stage: str, weight: np.ndarray, bias: np.ndarray, *, scale_known: bool, **extra: Any) -> None:
        point: dict[str, Any] = {
            "stage": stage,
            "queries": self.oracle.queries,
            "requests": self.oracle.requests,
            "seconds": self.oracle.seconds,
            "agreement": self.truth.agreement(weight, bias),
            "direction_error": self.truth.relative_error(weight, bias, fit_scale=True),
            "w_error": self.truth.relative_error(weight, bias) if scale_known else None,
        }
        self.checkpoints.append({**point, **extra})

    def left(self) -> int:
        return self.budget - self.oracle.queries

    def summary(self, w_target: float, agreement_target: float) -> dict[str, Any]:
        """The first checkpoint that meets each target, or the best one reached within the budget."""
        out: dict[str, Any] = {"budget": self.budget, "queries_spent": self.oracle.queries}
        for name, best in (("w", "w_error"), ("surrogate", "agreement")):
            hit = next((c for c in self.checkpoints if _meets(c, w_target, agreement_target)[name]), None)
            if hit is not None:
                out[name] = {"reached": True, "queries": hit["queries"], "seconds": hit["seconds"], best: hit[best]}
                continue
            scored = [c for c in self.checkpoints if c[best] is not None]
            top = (min if best == "w_error" else max)(scored, key=lambda c: c[best]) if scored else None
            out[name] = {
                "reached": False,
                "queries": None,
                "seconds": None,
                best: None if top is None else top[best],
                "direction_error": min(c["direction_error"] for c in self.checkpoints) if self.checkpoints else None,
            }
        return out


def _meets(point: dict[str, Any], w_target: float, agreement_target: float) -> dict[str, bool]:
    return {
        "w": point["w_error"] is not None and point["w_error"] <= w_target,
        "surrogate": point["agreement"] >= agreement_target,
    }


# ========================================================================================= logits


def logits_attack(oracle: HeadOracle, truth: Truth, budget: int) -> Progress:
    """Zero and unit vectors in one batch, then the unit vectors scaled to the headroom in a second."""
    d = oracle.dim
    progress = Progress(truth, oracle, budget)
    answers = oracle.ask_batch(np.vstack([np.zeros(d), np.eye(d)]))
    bias = answers[0]
    weight = answers[1:] - bias
    # What the first m unit vectors alone would have given (rows not asked are 0): the request's prefixes.
    for m in sorted({min(d, 1 << i) for i in range(3, 20)} - {d}):
        partial = np.where(np.arange(d)[:, None] < m, weight, 0.0)
        progress.checkpoints.append(
            {
                "stage": "prefix",
                "queries": m + 1,
                "requests": 1,
                "seconds": None,
                "agreement": truth.agreement(partial, bias),
                "direction_error": truth.relative_error(partial, bias, fit_scale=True),
                "w_error": truth.relative_error(partial, bias),
            }
        )
    progress.record("unit vectors", weight, bias, scale_known=True, w_error_uncentred=_uncentred(truth, weight))
    peak = float(np.abs(weight).max() + np.abs(bias).max())
    scale = 2.0 ** math.floor(HEADROOM_BITS - math.log2(max(peak, 1e-9)))
    if scale > 1.0 and progress.left() >= d:
        # The rest of the request repeats the zero vector: the bias cannot be scaled, only averaged.
        zeros = max(0, min(MAX_QUERIES_PER_REQUEST, progress.left()) - d)
        second = oracle.ask_batch(np.vstack([scale * np.eye(d), np.zeros((zeros, d))]))
        bias = (answers[0] + second[d:].sum(axis=0)) / (1 + zeros)
        weight = (second[:d] - bias) / scale
        progress.record(
            f"unit vectors x 2^{int(math.log2(scale))}",
            weight,
            bias,
            scale_known=True,
            w_error_uncentred=_uncentred(truth, weight),
        )
    return progress


def _uncentred(truth: Truth, weight: np.ndarray) -> float:
    return float(np.linalg.norm(weight - truth.weight) / np.linalg.norm(truth.weight))


# ======================================================================================== ranking


@dataclass
class _Bisection:
    """Bisections of one pair's boundary along segments a + t (b - a), t in [lo, hi]; at lo the pair's
    sign is `sign_lo`, at hi the other."""

    pair: int
    segments: np.ndarray  # segment indices
    sign_lo: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def points(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        t = (self.lo + self.hi) / 2
        out: np.ndarray = starts[self.segments] + t[:, None] * (ends[self.segments] - starts[self.segments])
        return out


def ranking_attack(
    oracle: HeadOracle, truth: Truth, budget: int, *, rounds: int, seed: int, w_target: float
) -> Progress:
    """Boundary bisection for the directions, repetition for the scale; see the module docstring."""
    rng = np.random.default_rng(seed)
    d, k = oracle.dim, oracle.num_classes
    pairs = ranking_pairs(k)
    progress = Progress(truth, oracle, budget)

    # Calibration: |reply| >= |z_i - z_j|, so eight unit-norm queries bound the differences at radius 1.
    probe = _sphere(rng, 8, d)
    radius = float(np.clip(2.0 ** (HEADROOM_BITS - 3) / np.abs(oracle.ask(probe)).max(), 1.0, 2.0**12))

    # Segments through random centres along random directions; their ends are asked once for all pairs.
    # About 80% of them cross a given boundary; a hyperplane fit needs well over d + 1 points.
    count = 2 * d + 32
    centres = radius * _sphere(rng, count, d) * np.sqrt(rng.uniform(0.0, 1.0, (count, 1)))
    reach = 3.0 * radius * _sphere(rng, count, d)
    starts, ends = centres + reach, centres - reach
    ends_answers = oracle.ask(np.vstack([starts, ends]))
    sign_start, sign_end = np.sign(ends_answers[:count]), np.sign(ends_answers[count:])

    tasks: list[_Bisection] = []
    for p, (i, _) in enumerate(pairs):
        if i >= 2:  # directions (0, j) and links (1, j) between their scales determine the head
            continue
        crossing = np.flatnonzero((sign_start[:, p] * sign_end[:, p]) < 0)
        if i == 1:  # a link needs a few points, not a hyperplane's worth
            crossing = crossing[:16]
        tasks.append(_Bisection(p, crossing, sign_start[crossing, p], np.zeros(len(crossing)), np.ones(len(crossing))))
    weight_c = np.zeros((d + 1, k))
    for r in range(1, rounds + 1):
        asked = sum(len(t.segments) for t in tasks)
        if asked > progress.left():
            break
        _bisect_round(oracle, tasks, starts, ends)
        weight_c = _head_from_boundaries(tasks, starts, ends, pairs, d, k, radius)
        progress.record(f"bisection round {r}", weight_c[:-1], weight_c[-1], scale_known=False)

    # Scale: repeat the segment end farthest from the boundary z_0 = z_1 (known to fit the headroom).
    ends_all = np.vstack([starts, ends])
    first = weight_c[:, 0] - weight_c[:, 1]  # z_0 - z_1 up to the unknown positive scale
    values = ends_all @ first[:-1] + first[-1]
    target = ends_all[int(np.argmax(np.abs(values)))]
    unit_value = float(values[int(np.argmax(np.abs(values)))])
    lowest, highest = math.inf, 0.0
    while progress.left() > 0:
        repeats = min(MAX_QUERIES_PER_REQUEST, progress.left())
        answers = oracle.ask(np.repeat(target[None, :], repeats, axis=0))[:, 0]
        lowest, highest = min(lowest, float(np.abs(answers).min())), max(highest, float(np.abs(answers).max()))
        magnitude = math.sqrt(lowest * highest / 2.0**RANKING_FACTOR_BITS)  # midpoint of the bracket, in log
        scale = magnitude / abs(unit_value)
        progress.record("repetition", scale * weight_c[:-1], scale * weight_c[-1], scale_known=True)
        if progress.checkpoints[-1]["w_error"] <= w_target:
            break
    return progress


def _sphere(rng: np.random.Generator, count: int, d: int) -> np.ndarray:
    g = rng.normal(size=(count, d))
    out: np.ndarray = g / np.linalg.norm(g, axis=1, keepdims=True)
    return out


def _bisect_round(oracle: HeadOracle, tasks: list[_Bisection], starts: np.ndarray, ends: np.ndarray) -> None:
    """One halving of every interval; a midpoint shared by several pairs' tasks is asked once."""
    keys: dict[tuple[int, float], int] = {}
    index = []
    for task in tasks:
        mids = (task.lo + task.hi) / 2
        index.append([keys.setdefault((int(s), float(t)), len(keys)) for s, t in zip(task.segments, mids, strict=True)])
    points = np.empty((len(keys), starts.shape[1]))
    for (s, t), row in keys.items():
        points[row] = starts[s] + t * (ends[s] - starts[s])
    answers = oracle.ask(points)
    for task, rows in zip(tasks, index, strict=True):
        mids = (task.lo + task.hi) / 2
        same = np.sign(answers[rows, task.pair]) == task.sign_lo
        task.lo = np.where(same, mids, task.lo)
        task.hi = np.where(same, task.hi, mids)


def _hyperplane(points: np.ndarray, radius: float) -> np.ndarray:
    """(v, c), |(radius v, c)| = 1, with v.x + c ~ 0 on the points (least squares: smallest singular vector)."""
    system = np.hstack([points / radius, np.ones((len(points), 1))])
    u = np.linalg.svd(system, full_matrices=False)[2][-1]
    out: np.ndarray = np.concatenate([u[:-1] / radius, u[-1:]])
    return out


def _head_from_boundaries(
    tasks: list[_Bisection],
    starts: np.ndarray,
    ends: np.ndarray,
    pairs: list[tuple[int, int]],
    d: int,
    k: int,
    radius: float,
) -> np.ndarray:
    """The centred [W; b] (d + 1, k), up to one positive scale, from the current boundary points."""
    by_pair = {pairs[t.pair]: t for t in tasks}
    diffs = {}  # j -> (W[:, 0] - W[:, j], b_0 - b_j) up to the scale of pair (0, j)
    for j in range(1, k):
        task = by_pair[(0, j)]
        u = _hyperplane(task.points(starts, ends), radius)
        # Oriented so that z_0 - z_j has the sign observed at each segment's start.
        side = np.sign(starts[task.segments] @ u[:-1] + u[-1])
        diffs[j] = u if np.sum(side == task.sign_lo) >= np.sum(side != task.sign_lo) else -u
    for j in range(2, k):  # on z_1 = z_j: s_j (z_0 - z_j)~ = s_1 (z_0 - z_1)~, so s_j / s_1 by least squares
        pts = by_pair[(1, j)].points(starts, ends)
        if not len(pts):
            continue
        f1, fj = pts @ diffs[1][:-1] + diffs[1][-1], pts @ diffs[j][:-1] + diffs[j][-1]
        diffs[j] = diffs[j] * float(np.dot(f1, fj) / max(float(np.dot(fj, fj)), 1e-300))
    out = np.zeros((d + 1, k))
    out[:, 0] = sum(diffs.values()) / k
    for j in range(1, k):
        out[:, j] = out[:, 0] - diffs[j]
    return out
