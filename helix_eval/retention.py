"""Classification retention: the provider's frozen head applied to mapped client embeddings.

The head is what a provider would deploy: multinomial logistic regression on its own
(raw, unnormalised) embeddings of the train split. Retention = accuracy on mapped client
embeddings / accuracy on the provider's own embeddings of the same test texts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

HEAD_C = 1.0
HEAD_MAX_ITER = 2000


@dataclass(frozen=True)
class Head:
    """A linear head: logits = x @ coef.T + intercept."""

    model: LogisticRegression

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(np.asarray(x, dtype=np.float64)))

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.model.predict(np.asarray(x, dtype=np.float64)) == np.asarray(labels)))


def train_head(x: np.ndarray, labels: np.ndarray, c: float = HEAD_C, seed: int = 0) -> Head:
    """Fit the head (L2, C=1, lbfgs): the same recipe for the provider and for few-shot baselines."""
    model = LogisticRegression(C=c, max_iter=HEAD_MAX_ITER, random_state=seed)
    model.fit(np.asarray(x, dtype=np.float64), np.asarray(labels))
    return Head(model)


def stratified_sample(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k indices covering every class at least once where possible (few-shot draws)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    first = [rng.choice(np.flatnonzero(labels == c)) for c in classes][:k]
    rest = np.setdiff1d(np.arange(len(labels)), first)
    extra = rng.choice(rest, size=max(0, min(k - len(first), len(rest))), replace=False)
    return np.sort(np.concatenate([np.asarray(first, dtype=int), extra.astype(int)]))
