"""Embedding text sets through the cached embedder (each (model, text) is embedded once, ever)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helix_embeddings import Embedder, load_embedder

CACHE_ENV = "HELIX_EVAL_CACHE"


def default_cache_dir() -> Path:
    """``$HELIX_EVAL_CACHE``, else ``.helix/eval-cache`` (shared by every experiment)."""
    return Path(os.environ.get(CACHE_ENV, ".helix/eval-cache"))


class Embeddings:
    """Lazily loaded cached embedders keyed by spec; ``embed(spec, texts)`` returns float64."""

    #: Texts per cache write: an interrupted embedding keeps every finished chunk.
    CHUNK = 250

    def __init__(self, cache_dir: Path | None = None, progress: bool = False) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.progress = progress
        self._models: dict[str, Embedder] = {}

    def model(self, spec: str) -> Embedder:
        """The cached embedder for ``spec``, loaded once per process (models are big)."""
        if spec not in self._models:
            self._models[spec] = load_embedder(spec, cache_dir=self.cache_dir)
        return self._models[spec]

    def model_id(self, spec: str) -> str:
        return str(self.model(spec).model_id)

    def embed(self, spec: str, texts: list[str]) -> np.ndarray:
        """Embeddings as float64 (the statistics are sums over thousands of rows).

        Texts go to the cache in chunks, so an interrupted run re-embeds at most one chunk."""
        model = self.model(spec)
        if len(texts) <= self.CHUNK:
            return np.asarray(model.embed(texts, progress=self.progress), dtype=np.float64)
        parts = [
            np.asarray(model.embed(texts[i : i + self.CHUNK], progress=self.progress), dtype=np.float64)
            for i in range(0, len(texts), self.CHUNK)
        ]
        return np.vstack(parts)
