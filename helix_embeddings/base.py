"""The embedder contract shared by every HELIX embedding backend.

HELIX aligns two parties' *different* embedding spaces, so everything downstream
(alignment fitting, caching, the CKKS client) must be able to treat any model the
same way: a stable identifier, a fixed dimensionality, and a function from texts
to a float32 matrix. That contract lives here, together with the two helpers
every implementation needs to honour it (input checking and output coercion).

Normalisation policy: ``embed`` returns whatever the backend's *own* convention
produces. We do not L2-normalise on top, because (a) the alignment code should see
the geometry the model actually emits and decide for itself, and (b) silently
changing vectors would make cached vectors ambiguous. A backend that offers an
explicit normalisation option records it in its ``model_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to fixed-size float32 vectors.

    A ``Protocol`` (structural typing) rather than an ABC, so wrappers such as
    :class:`helix_embeddings.cache.CachedEmbedder` and future remote backends
    (OpenAI, Cohere, ...) conform without inheriting from anything here.

    Attributes:
        model_id: Stable string naming the model *and* every option that changes
            its output (e.g. ``"wordllama:l2_supercat-256"``). Caches are keyed
            on it, so two embedders with equal ``model_id`` must produce equal
            vectors for equal texts.
        dim: Number of columns ``embed`` returns.
    """

    model_id: str
    dim: int

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts`` into a C-contiguous float32 array of shape ``(len(texts), dim)``.

        Args:
            texts: The texts, in order. A bare ``str`` is rejected (it is a
                ``Sequence[str]`` of characters, which is never what callers mean).
            batch_size: Backend batch size; ``None`` uses the backend's default.
            progress: Show a progress bar where the backend supports one.
        """
        ...


def as_text_list(texts: Sequence[str]) -> list[str]:
    """Validate ``texts`` and return it as a list.

    Why: ``str`` satisfies ``Sequence[str]``, so ``embed("hello")`` would
    otherwise silently embed five one-character strings.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("embed() takes a sequence of strings, not a single string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return out


def as_embedding_matrix(values: object, n: int, dim: int) -> np.ndarray:
    """Coerce backend output to the contract: C-contiguous float32 of shape ``(n, dim)``.

    Why: backends disagree on edge cases (sentence-transformers returns a 1-D
    float64 array for empty input), and downstream code and the cache rely on
    exact shape and dtype.
    """
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if arr.shape != (n, dim):
        raise ValueError(f"embedder returned shape {arr.shape}, expected {(n, dim)}")
    return arr
