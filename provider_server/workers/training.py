"""What a head training's own process runs: embed the labelled texts with the provider's encoder,
fit the head, embed the texts published with it, and send the arrays back.

Why a process of its own (not a thread of the server): a process can be killed at any moment, so a
training stops at once when it is cancelled or runs past its timeout, whatever it is doing (loading
the encoder, embedding, fitting), and it writes nothing the server would have to clean up: the
server stores blobs and the head only from the arrays this process sends.

The encoder is loaded here only if the provider's embedding cache lacks some of the texts (the cache
is a SQLite file safe to share between processes): on a quiet 2-core machine loading MiniLM costs
~5.7 s against ~1.1 s to embed 400 texts and ~0.01 s to fit them, and re-training on texts the
provider has embedded before loads nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from helix_embeddings import CachedEmbedder, Embedder, load_embedder

from ..training import sample_texts, train_logistic_head
from .watchdog import exit_with_parent


@dataclass(frozen=True)
class TrainingWork:
    """Everything a training process needs (picklable: texts and small values, never server objects)."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    num_classes: int
    regularization_c: float
    seed: int
    in_distribution_texts: int
    encoder: str  # the provider's encoder spec (`load_embedder`)
    model_id: str  # what the server's encoder reports, so cache entries are shared
    dim: int
    cache_dir: str


@dataclass(frozen=True)
class TrainedArrays:
    """What a training process sends back: the head and its published texts with their embeddings."""

    weight: np.ndarray  # (dim, k)
    bias: np.ndarray  # (k,)
    train_accuracy: float
    texts: tuple[str, ...]
    texts_embeddings: np.ndarray | None


class LazyEncoder:
    """The provider's encoder, loaded on its first `embed` (none if the cache has every text)."""

    def __init__(self, spec: str, model_id: str, dim: int) -> None:
        self._spec = spec
        self.model_id = model_id
        self.dim = dim
        self._inner: Embedder | None = None

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        if self._inner is None:
            inner = load_embedder(self._spec)
            if (inner.model_id, inner.dim) != (self.model_id, self.dim):
                raise RuntimeError(
                    f"the encoder {self._spec!r} loads as {inner.model_id} ({inner.dim}), "
                    f"the server's is {self.model_id} ({self.dim})"
                )
            self._inner = inner
        return self._inner.embed(texts, batch_size=batch_size, progress=progress)


def train(work: TrainingWork) -> TrainedArrays:
    emb = CachedEmbedder(LazyEncoder(work.encoder, work.model_id, work.dim), Path(work.cache_dir))
    x = emb.embed(list(work.texts)).astype(np.float64)
    trained = train_logistic_head(x, list(work.labels), work.num_classes, c=work.regularization_c, seed=work.seed)
    texts = sample_texts(list(work.texts), work.in_distribution_texts, work.seed)
    texts_emb = emb.embed(texts).astype(np.float64) if texts else None
    return TrainedArrays(trained.weight, trained.bias, trained.train_accuracy, tuple(texts), texts_emb)


def run_training(work: TrainingWork, results: Connection) -> None:
    """Entry point of a training process: ("ok", TrainedArrays) or ("error", sentence) on `results`."""
    exit_with_parent()
    try:
        message: tuple[str, object] = ("ok", train(work))
    except Exception as exc:  # any failure is reported to the server, which fails the job with it
        message = ("error", f"{type(exc).__name__}: {exc}")
    results.send(message)
    results.close()
