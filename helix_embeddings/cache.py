"""Content-addressed embedding cache wrapping any :class:`~helix_embeddings.base.Embedder`.

Why: alignment experiments re-embed the same corpora (anchor sets, SST-2 splits)
many times, and the slow backends (MiniLM ~2-4 s per 1000 texts, LLM backends
~45 s) dominate run time. Vectors are keyed by ``(model_id, sha256(text))``, so a
cache directory can be shared by several models and is invalidated automatically
when a model or its output-changing options change (they change ``model_id``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import Embedder, as_embedding_matrix, as_text_list
from .vector_store import VectorStore


def text_key(text: str) -> bytes:
    """sha256 digest of the UTF-8 text (lone surrogates passed through rather than failing)."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).digest()


class CachedEmbedder:
    """An Embedder that only asks ``inner`` for texts not already in ``cache_dir``.

    It has the same ``model_id`` and ``dim`` as ``inner`` (it is the same model as
    far as anyone downstream can tell). Returned vectors are bit-identical on a
    hit and on the miss that populated the entry, because the inner backend's
    float32 output is stored verbatim.

    Attributes:
        hits / misses: Running counts of texts served from disk vs. embedded.
    """

    def __init__(self, inner: Embedder, cache_dir: Path) -> None:
        """Wrap ``inner``; ``cache_dir`` is created if missing."""
        self.inner = inner
        self.model_id: str = inner.model_id
        self.dim: int = inner.dim
        self.cache_dir = Path(cache_dir)
        self.store = VectorStore(self.cache_dir)
        self.hits = 0
        self.misses = 0

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Return cached vectors, embedding (once each) and storing only the missing unique texts."""
        items = as_text_list(texts)
        keys = [text_key(t) for t in items]
        found = self.store.get_many(self.model_id, self.dim, keys)

        missing: dict[bytes, str] = {}
        for key, text in zip(keys, items, strict=True):
            if key not in found and key not in missing:
                missing[key] = text
        if missing:
            fresh = as_embedding_matrix(
                self.inner.embed(list(missing.values()), batch_size=batch_size, progress=progress),
                len(missing),
                self.dim,
            )
            new = dict(zip(missing.keys(), fresh, strict=True))
            self.store.put_many(self.model_id, new)
            found.update(new)

        self.misses += len(missing)
        self.hits += len(items) - len(missing)
        if not items:
            return as_embedding_matrix(None, 0, self.dim)
        return as_embedding_matrix(np.stack([found[k] for k in keys]), len(items), self.dim)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, cache_dir={str(self.cache_dir)!r})"
