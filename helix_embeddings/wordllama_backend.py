"""WordLlama backend (spec ``wordllama:l2_supercat[?dim=256&normalize=bool]``).

WordLlama is a static token-embedding model (a codebook distilled from Llama-2's
embedding layer, mean-pooled), so it is ~50x faster than MiniLM and gives HELIX
a genuinely *different* embedding space to align against.

Offline loading: the ``wordllama`` wheel ships ``weights/l2_supercat_256.safetensors``
and the tokenizer config inside the package directory. We pass that directory as
``cache_dir`` and ``disable_download=True`` so a missing file raises instead of
fetching from Hugging Face.

Dimensions: the model is Matryoshka-trained, so any supported ``dim`` below a
shipped size is served by loading the shipped file and truncating columns
(WordLlama's own ``trunc_dim``). Only 256 is shipped, so 64/128/256 work and
512/1024 raise.

Output convention: WordLlama's default (``norm=False``): raw mean-pooled token
vectors, *not* unit length. An empty string has no tokens and maps to the zero
vector. ``?normalize=true`` L2-normalises rows (zero rows stay zero, unlike
WordLlama's own ``norm=True`` which yields NaN there) and is recorded in ``model_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import wordllama
from wordllama import WordLlama
from wordllama.config import WordLlamaModels

from .base import as_embedding_matrix, as_text_list
from .specs import bool_option, int_option, reject_unknown_options

BACKEND = "wordllama"
DEFAULT_CONFIG = "l2_supercat"
DEFAULT_DIM = 256
DEFAULT_BATCH_SIZE = 64


def package_dir() -> Path:
    """The installed ``wordllama`` package directory, which holds ``weights/`` and ``tokenizers/``."""
    return Path(wordllama.__file__).resolve().parent


def shipped_dims(config: str) -> list[int]:
    """Dimensions for which full-precision weights of ``config`` are present locally."""
    pattern = re.compile(rf"^{re.escape(config)}_(\d+)\.safetensors$")
    found = (pattern.match(p.name) for p in (package_dir() / "weights").glob(f"{config}_*.safetensors"))
    return sorted(int(m.group(1)) for m in found if m)


def _l2_normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place, leaving all-zero rows (empty texts) at zero.

    Why not WordLlama's own ``norm=True``: it divides by zero for texts with no
    tokens and returns NaN rows, which would poison alignment fits.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class WordLlamaEmbedder:
    """Embedder over a locally shipped WordLlama configuration."""

    def __init__(self, config: str = DEFAULT_CONFIG, dim: int = DEFAULT_DIM, normalize: bool = False) -> None:
        """Load weights eagerly (16 MB, ~0.25 s) so configuration errors surface at construction."""
        known = WordLlamaModels.list_configs()
        if config not in known:
            raise ValueError(f"unknown WordLlama config {config!r}; known: {known}")
        model_uri = getattr(WordLlamaModels, config)
        if dim not in model_uri.available_dims:
            raise ValueError(f"WordLlama {config} dim must be one of {model_uri.available_dims}, got {dim}")
        loadable = [d for d in shipped_dims(config) if d >= dim and d in model_uri.available_dims]
        if not loadable:
            raise ValueError(
                f"no local WordLlama {config} weights of size >= {dim} under {package_dir() / 'weights'} "
                f"(shipped: {shipped_dims(config)}); downloads are disabled"
            )
        load_dim = loadable[0]
        self._model = WordLlama.load(
            config=config,
            dim=load_dim,
            trunc_dim=dim if dim != load_dim else None,
            cache_dir=package_dir(),
            disable_download=True,
        )
        self.config = config
        self.dim = dim
        self.normalize = normalize
        self.model_id = f"{BACKEND}:{config}-{dim}" + ("?normalize=true" if normalize else "")

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Mean-pooled token embeddings; see the module docstring for normalisation."""
        items = as_text_list(texts)
        if not items:
            return as_embedding_matrix(None, 0, self.dim)
        bs = batch_size or DEFAULT_BATCH_SIZE
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(range(0, len(items), bs), desc=self.model_id, unit="batch")
            out = np.concatenate([self._model.embed(items[i : i + bs], batch_size=bs) for i in starts])
        else:
            out = self._model.embed(items, batch_size=bs)
        out = as_embedding_matrix(out, len(items), self.dim)
        return _l2_normalize_rows(out) if self.normalize else out

    def __repr__(self) -> str:
        return f"WordLlamaEmbedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> WordLlamaEmbedder:
    """Registry factory for ``wordllama:<config>[?dim=N&normalize=bool]``."""
    reject_unknown_options(BACKEND, options, {"dim", "normalize"})
    return WordLlamaEmbedder(
        config=name,
        dim=int_option(options, "dim", DEFAULT_DIM),
        normalize=bool_option(options, "normalize", False),
    )
