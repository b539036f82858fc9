"""Validation folds of an alignment corpus: which samples make up each part whose cross-covariance
X_k^T Y_k the provider returns when a client asks for per-fold results.

Why a fixed partition: a client that could choose the parts (or get two different partitions of
the same texts) would learn X^T Y over the differences of parts, which can be small enough to pin
down the provider's embeddings of those texts. So the parts are a function of the corpus size, the
number of published head texts and the provider's fixed fold count only: the public corpus in K
contiguous blocks, the head texts (if included) in K blocks of their own, block k of each forming
fold k. Including or leaving out the head texts never moves a corpus sample to another fold.
"""

from __future__ import annotations

import numpy as np

#: Every revealed cross-covariance is D + 1 numbers per column of Y (X^T Y and 1^T Y). With K folds
#: the client learns K (D + 1) linear functionals of each column of the n samples; the provider
#: refuses per-fold results unless n is at least this factor times that, so every column keeps at
#: least half of its degrees of freedom hidden (the paper's protocol alone keeps n - (D + 1)).
MIN_SAMPLES_PER_REVEALED_VALUE = 2


def fold_rows(corpus_size: int, head_text_count: int, folds: int) -> list[np.ndarray]:
    """Sample indices of each fold (samples: the corpus rows, then the head texts if included)."""
    if folds < 2:
        raise ValueError("validation needs at least two folds")
    corpus = np.array_split(np.arange(corpus_size, dtype=np.int64), folds)
    heads = np.array_split(corpus_size + np.arange(head_text_count, dtype=np.int64), folds)
    return [np.concatenate([c, h]) for c, h in zip(corpus, heads, strict=True)]


def fold_disclosure_error(num_samples: int, feature_dim: int, folds: int) -> str | None:
    """Why per-fold results would reveal too much about the provider's embeddings, or None."""
    revealed = folds * (feature_dim + 1)
    if num_samples < MIN_SAMPLES_PER_REVEALED_VALUE * revealed:
        return (
            f"{folds} folds of {num_samples} samples would reveal {revealed} linear functionals of each of the "
            f"provider's embedding columns; per-fold results need at least {MIN_SAMPLES_PER_REVEALED_VALUE * revealed} "
            f"samples for feature dimension {feature_dim} (use a larger corpus or a method without validation folds)"
        )
    return None
