"""Classification retention: the provider's frozen head applied to mapped client embeddings.

The head is what a provider would deploy: multinomial logistic regression on its own standardised
embeddings of the train split, with C chosen by cross-validation on that train split (never the
test split). Retention = accuracy on mapped client embeddings / accuracy on the provider's own
embeddings of the same test texts.

Every head in an experiment (the provider's baseline, the client's own head, the few-shot heads on
k samples) uses this one recipe, so no comparison is won by under-fitting the other side: a head
with C = 1 on raw unit-length embeddings is heavily over-regularised on 32 samples (it scored near
chance on a 14-class task where a tuned head reached 49 %). ``c`` fixes C instead of tuning it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

HEAD_MAX_ITER = 3000
#: C candidates for the cross-validated heads (inverse L2 strength on standardised features).
C_GRID = tuple(float(c) for c in np.logspace(-5, 2, 8))  # the grid of the probe bounds (bounds.py)
HEAD_FOLDS = 5


@dataclass(frozen=True)
class Head:
    """A linear head on standardised inputs: logits = ((x - mean) / scale) @ coef.T + intercept."""

    model: Pipeline
    c: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(np.asarray(x, dtype=np.float64)))

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.model.predict(np.asarray(x, dtype=np.float64)) == np.asarray(labels)))

    def linear(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, c) with logits = x @ W.T + c on *raw* inputs: the standardisation folded into the weights,
        which is the form a provider deploys (and the form a map can be folded into)."""
        scaler, lr = self.model[0], self.model[-1]
        w = lr.coef_ / scaler.scale_
        return w, lr.intercept_ - w @ scaler.mean_

    def describe(self) -> dict[str, object]:
        return {"C": self.c, "classes": len(self.model[-1].classes_)}


class FlooredScaler(StandardScaler):  # type: ignore[misc]  # scikit-learn ships no type information
    """StandardScaler that treats numerically constant features as constant.

    Why: some encoders have a coordinate that is zero up to float noise (MiniLM has one with standard
    deviation ~1e-33). Dividing by that scale turns the noise into huge features, and a head trained on
    them gives weights ~1e31 on raw inputs: harmless on the provider's own embeddings (the coordinate is
    constant there), ruinous on mapped ones, and impossible to encrypt. Scales below 1e-6 of the median
    scale are set to 1, as scikit-learn does for exactly constant features."""

    def fit(self, x: np.ndarray, y: object = None, sample_weight: object = None) -> FlooredScaler:
        super().fit(x, y, sample_weight)
        scale = np.asarray(self.scale_)  # type: ignore[has-type]
        floor = 1e-6 * float(np.median(scale))
        self.scale_ = np.where(scale < floor, 1.0, scale)
        return self


def _splitter(labels: np.ndarray, seed: int) -> StratifiedKFold | KFold:
    """Stratified folds where every class has >= 2 rows (at most 5 folds), plain shuffled folds otherwise."""
    counts = np.unique(labels, return_counts=True)[1]
    if counts.min() >= 2:
        return StratifiedKFold(n_splits=int(min(HEAD_FOLDS, counts.min())), shuffle=True, random_state=seed)
    return KFold(n_splits=int(min(HEAD_FOLDS, len(labels))), shuffle=True, random_state=seed)


def train_head(x: np.ndarray, labels: np.ndarray, c: float | None = None, seed: int = 0) -> Head:
    """Standardise, then fit an L2 logistic regression; C by cross-validation on (x, labels) unless given.

    The same recipe for the provider's head, the client's own head and every few-shot baseline."""
    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    if c is not None:
        model = make_pipeline(FlooredScaler(), LogisticRegression(C=c, max_iter=HEAD_MAX_ITER, random_state=seed))
        model.fit(x, labels)
        return Head(model, float(c))
    cv = LogisticRegressionCV(
        Cs=list(C_GRID), cv=_splitter(labels, seed), max_iter=HEAD_MAX_ITER, random_state=seed, scoring="accuracy"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fold-size notices on tiny few-shot sets and sklearn API notices
        cv_model = make_pipeline(FlooredScaler(), cv).fit(x, labels)
    chosen = float(np.ravel(cv_model[-1].C_)[0])
    model = make_pipeline(FlooredScaler(), LogisticRegression(C=chosen, max_iter=HEAD_MAX_ITER, random_state=seed))
    model.fit(x, labels)
    return Head(model, chosen)


def head_recipe(c: float | None) -> dict[str, object]:
    """What the result files record about the head."""
    return {
        "type": "standardise (scales below 1e-6 x median set to 1) + LogisticRegression (L2, lbfgs)",
        "C": c if c is not None else "cv",
        "c_grid": list(C_GRID) if c is None else None,
        "cv_folds": HEAD_FOLDS if c is None else None,
        "max_iter": HEAD_MAX_ITER,
    }


def stratified_sample(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k indices covering every class at least once where possible (few-shot draws)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    first = [rng.choice(np.flatnonzero(labels == c)) for c in classes][:k]
    rest = np.setdiff1d(np.arange(len(labels)), first)
    extra = rng.choice(rest, size=max(0, min(k - len(first), len(rest))), replace=False)
    return np.sort(np.concatenate([np.asarray(first, dtype=int), extra.astype(int)]))
