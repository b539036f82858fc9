"""Turn a spec string into a loaded :class:`~helix_embeddings.base.Embedder`.

Each backend is a module exposing ``from_spec(name: str, options: Mapping[str, str]) -> Embedder``.
The registry maps backend names to ``"module:function"`` strings and imports
them only on first use, because importing a backend is expensive
(sentence-transformers pulls in torch + transformers, ~5 s) and a process that
only needs WordLlama should not pay for it.

Adding a backend = write ``helix_embeddings/<x>_backend.py`` with a
``from_spec`` and add one line to ``_BACKENDS`` (or call :func:`register_backend`
from outside the package). docs/embedders.md lists the backends and their options.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from .base import Embedder
from .cache import CachedEmbedder
from .specs import EmbedderSpec, parse_spec

BackendFactory = Callable[[str, Mapping[str, str]], Embedder]

_BACKENDS: dict[str, str | BackendFactory] = {
    "sentence-transformers": "helix_embeddings.sentence_transformers_backend:from_spec",
    "wordllama": "helix_embeddings.wordllama_backend:from_spec",
    "causal-lm": "helix_embeddings.causal_lm_backend:from_spec",
    "spacy": "helix_embeddings.spacy_backend:from_spec",
    "e5": "helix_embeddings.e5_backend:from_spec",
    "glove": "helix_embeddings.glove_backend:from_spec",
    "openai": "helix_embeddings.openai_backend:from_spec",
    "cohere": "helix_embeddings.cohere_backend:from_spec",
    "gemini": "helix_embeddings.gemini_backend:from_spec",
}


def known_backends() -> list[str]:
    """Registered backend names, sorted (used in error messages)."""
    return sorted(_BACKENDS)


def register_backend(name: str, factory: str | BackendFactory) -> None:
    """Register a backend by ``"module:function"`` path (imported lazily) or by callable.

    Re-registering a name replaces it and clears the instance cache so the
    next :func:`load_embedder` call uses the new factory.
    """
    _BACKENDS[name.lower()] = factory
    _load_uncached.cache_clear()


def _factory(backend: str) -> BackendFactory:
    entry = _BACKENDS.get(backend)
    if entry is None:
        raise ValueError(f"unknown embedder backend {backend!r}; known backends: {', '.join(known_backends())}")
    if callable(entry):
        return entry
    module_name, _, attr = entry.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory


@cache
def _load_uncached(spec: EmbedderSpec) -> Embedder:
    """Load one embedder per distinct parsed spec per process (models are big; reuse them)."""
    return _factory(spec.backend)(spec.name, spec.option_dict)


def load_embedder(spec: str, cache_dir: Path | None = None) -> Embedder:
    """Load the embedder named by ``spec``, optionally behind an on-disk cache.

    Args:
        spec: ``backend:name[?opt=val&...]`` or an alias: ``"minilm"``
            (= ``sentence-transformers:all-MiniLM-L6-v2``), ``"mpnet"``, ``"e5"``, ``"wordllama"``
            (= ``wordllama:l2_supercat``, option ``dim``, default 256), ``"spacy"``,
            ``"glove"``, ``"smollm2"``, ``"gemma3"`` (see :data:`~helix_embeddings.specs.ALIASES`
            and docs/embedders.md for every backend's options).
        cache_dir: If given, wrap the model in a :class:`CachedEmbedder` on this directory.

    Raises:
        ValueError: malformed spec, unknown backend (message lists the known
            ones), unknown option, a model that is not available offline, or (cloud
            backends) a missing API key (:class:`~helix_embeddings.errors.MissingCredentialsError`).
        ImportError: the package shipping a model's weights is not installed
            (the message names the pip command).
    """
    parsed = parse_spec(spec)
    embedder = _load_uncached(parsed)
    return CachedEmbedder(embedder, cache_dir) if cache_dir is not None else embedder
