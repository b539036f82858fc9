"""Token-level affine maps between two LMs' last hidden states, fitted from streamed statistics.

Each training text is run through both models once; its token pairs (:mod:`.tokens`) add to
X^T X, X^T Y and the sums of a :class:`StatsAccumulator`, and the states are dropped. Memory is a
few d x d matrices per map whatever the number of tokens. The map itself comes from the project's
map methods (:func:`helix_alignment.methods.solve_method`), so cross-validated ridge picks its
strength from per-fold statistics exactly as for the classification maps.

Controls come from the same pass: a model mapped to itself (identity control: the fit should find
about the identity) and a shuffled-pairs map, whose source states are paired with the target
states of an *other* text, which keeps both marginal distributions but destroys the correspondence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helix_alignment.methods import solve_method, sum_stats
from helix_alignment.ridge import AffineMap, SufficientStats

from .models import CausalLM
from .tokens import TokenizedText, paired_positions, tokenize

DEFAULT_METHOD = "ridge_cv"
DEFAULT_FOLDS = 5


class StatsAccumulator:
    """Running sufficient statistics of (x, y) pairs, kept per fold so cross-validation needs no data."""

    def __init__(self, dim_x: int, dim_y: int, folds: int = DEFAULT_FOLDS) -> None:
        if folds < 1:
            raise ValueError("folds must be >= 1")
        self.dim_x, self.dim_y = dim_x, dim_y
        self._n = [0] * folds
        self._xtx = [np.zeros((dim_x, dim_x)) for _ in range(folds)]
        self._xs = [np.zeros(dim_x) for _ in range(folds)]
        self._xty = [np.zeros((dim_x, dim_y)) for _ in range(folds)]
        self._ys = [np.zeros(dim_y) for _ in range(folds)]

    def add(self, x: np.ndarray, y: np.ndarray, fold: int = 0) -> None:
        """Add rows of paired states (n, dim_x) and (n, dim_y) to fold ``fold``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape[0] != y.shape[0] or x.shape[1:] != (self.dim_x,) or y.shape[1:] != (self.dim_y,):
            raise ValueError(f"pair shapes {x.shape} / {y.shape} do not fit a {self.dim_x} -> {self.dim_y} map")
        k = fold % len(self._n)
        self._n[k] += x.shape[0]
        self._xtx[k] += x.T @ x
        self._xs[k] += x.sum(axis=0)
        self._xty[k] += x.T @ y
        self._ys[k] += y.sum(axis=0)

    @property
    def n(self) -> int:
        return sum(self._n)

    def folds(self) -> list[SufficientStats]:
        return [
            SufficientStats(n=n, xtx=a, x_sum=s, xty=c, y_sum=t)
            for n, a, s, c, t in zip(self._n, self._xtx, self._xs, self._xty, self._ys, strict=True)
            if n > 0
        ]

    def total(self) -> SufficientStats:
        return sum_stats(self.folds())

    def solve(self, method: str = DEFAULT_METHOD, **params: Any) -> tuple[AffineMap, dict[str, Any]]:
        """The map of ``method`` (see :data:`helix_alignment.methods.METHODS`) from the statistics so far."""
        if self.n <= self.dim_x:
            raise ValueError(f"{self.n} token pairs cannot determine a {self.dim_x}-dimensional map")
        folds = self.folds()
        amap, info = solve_method(method, self.total(), folds=folds if len(folds) > 1 else None, **params)
        return amap, {"method": method, "pairs": self.n, **info}


@dataclass(frozen=True)
class Direction:
    """One map to fit: source model -> target model (indices into the model list), maybe shuffled."""

    source: int
    target: int
    shuffled: bool = False

    def label(self, names: Sequence[str]) -> str:
        return f"{names[self.source]}->{names[self.target]}" + (" (shuffled)" if self.shuffled else "")


@dataclass
class _TextStates:
    tok: TokenizedText
    states: np.ndarray


@dataclass
class FitReport:
    """Maps fitted in one pass over the training texts, with what the pass cost."""

    maps: dict[Direction, AffineMap]
    info: dict[Direction, dict[str, Any]]
    texts: int
    tokens: list[int]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _pairs(a: _TextStates, b: _TextStates) -> tuple[np.ndarray, np.ndarray]:
    pos_a, pos_b = paired_positions(a.tok, b.tok)
    return a.states[pos_a], b.states[pos_b]


def fit_maps(
    models: Sequence[CausalLM],
    directions: Sequence[Direction],
    texts: Iterable[str],
    *,
    max_tokens: int = 128,
    method: str = DEFAULT_METHOD,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    progress: bool = False,
) -> FitReport:
    """Run every model once per text and fit every direction's map from streamed statistics.

    Texts are assigned to folds in turn, so cross-validation holds out whole texts (tokens of one
    text are strongly correlated). ``max_tokens`` truncates each text for each model.
    """
    import time

    rng = np.random.default_rng(seed)
    accs = {d: StatsAccumulator(models[d.source].dim, models[d.target].dim, folds) for d in directions}
    previous: list[_TextStates] | None = None
    n_texts, n_tokens = 0, [0] * len(models)
    start = time.perf_counter()
    for i, text in enumerate(texts):
        current = []
        for j, lm in enumerate(models):
            tok = tokenize(lm.tokenizer, text, max_length=max_tokens)
            current.append(_TextStates(tok, lm.hidden_states(tok.ids)))
            n_tokens[j] += len(tok.ids)
        # Truncation differs per tokenizer: keep only pairs inside the shorter model's view of the text.
        covered = min((c.tok.spans[-1, 1] if len(c.tok.spans) else 0) for c in current)
        clipped = [_clip(c, int(covered)) for c in current]
        for d, acc in accs.items():
            if not d.shuffled:
                x, y = _pairs(clipped[d.source], clipped[d.target])
            elif previous is not None:
                x, _ = _pairs(clipped[d.source], clipped[d.target])
                other = previous[d.target].states[previous[d.target].tok.positions]
                y = other[rng.integers(0, len(other), size=len(x))] if len(other) else other[:0]
                x = x[: len(y)] if len(other) else x[:0]
            else:
                continue
            if len(x):
                acc.add(x, y, fold=i)
        previous = clipped
        n_texts += 1
        if progress and n_texts % 100 == 0:
            print(f"  fit: {n_texts} texts, {time.perf_counter() - start:.0f} s", flush=True)
    maps: dict[Direction, AffineMap] = {}
    info: dict[Direction, dict[str, Any]] = {}
    for d, acc in accs.items():
        maps[d], info[d] = acc.solve(method)
    return FitReport(maps, info, n_texts, n_tokens, time.perf_counter() - start)


def _clip(states: _TextStates, end: int) -> _TextStates:
    keep = states.tok.spans[:, 1] <= end
    tok = TokenizedText(states.tok.text, states.tok.ids, states.tok.positions[keep], states.tok.spans[keep])
    return _TextStates(tok, states.states)


def identity_map(dim: int) -> AffineMap:
    """The exact identity (a model stitched to itself must then decode exactly as it does alone)."""
    return AffineMap(weight=np.eye(dim), bias=np.zeros(dim))


def save_map(path: Path, amap: AffineMap, meta: dict[str, Any]) -> None:
    """Weights as .npz arrays and metadata as a JSON string (no pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, weight=amap.weight, bias=amap.bias, meta=np.array(json.dumps(meta)))


def load_map(path: Path) -> tuple[AffineMap, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as data:
        meta: dict[str, Any] = json.loads(str(data["meta"]))
        return AffineMap(weight=data["weight"], bias=data["bias"]), meta
