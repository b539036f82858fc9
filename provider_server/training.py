"""Training a linear head on the provider's own embeddings (multinomial logistic regression).

The head is stored as logits = x @ W + b with W (d, k) for every k, including k = 2 (sklearn's
binary model w.x + c becomes the symmetric pair -(w.x + c)/2, +(w.x + c)/2: same probabilities,
same argmax), so the encrypted circuit has one shape."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class TrainedHead:
    weight: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    train_accuracy: float


def train_logistic_head(
    x: np.ndarray, labels: list[int], num_classes: int, c: float = 1.0, seed: int = 0
) -> TrainedHead:
    y = np.asarray(labels)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(x, y)
    classes = list(clf.classes_)
    if num_classes == 2 and len(classes) == 2:
        w = clf.coef_[0] / 2.0
        b = clf.intercept_[0] / 2.0
        weight = np.stack([-w, w], axis=1)
        bias = np.array([-b, b])
    else:
        weight = np.zeros((x.shape[1], num_classes))
        bias = np.full(num_classes, -1e3)  # a class absent from training can never win
        for row, cls in enumerate(classes):
            weight[:, cls] = clf.coef_[row]
            bias[cls] = clf.intercept_[row]
    acc = float(np.mean(np.argmax(x @ weight + bias, axis=1) == y))
    return TrainedHead(weight=weight, bias=bias, train_accuracy=acc)


def sample_texts(texts: list[str], count: int, seed: int) -> list[str]:
    """The in-distribution texts a provider chooses to publish with a head (seeded, order kept)."""
    if count <= 0:
        return []
    idx = sorted(random.Random(seed + 1).sample(range(len(texts)), min(count, len(texts))))
    return [texts[i] for i in idx]
