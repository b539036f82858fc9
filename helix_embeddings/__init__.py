"""HELIX embedding backends behind one contract, with an on-disk cache.

Typical use::

    from helix_embeddings import load_embedder
    emb = load_embedder("minilm", cache_dir=Path("cache/emb"))
    X = emb.embed(["a sentence", "another"])   # float32, (2, 384)

Importing this package is cheap: backends (torch, sentence-transformers,
wordllama, spaCy, the cloud SDKs) are imported only when a spec that needs
them is loaded. docs/embedders.md lists every backend and its options.
"""

from .base import Embedder
from .cache import CachedEmbedder
from .errors import EmbedderAuthError, EmbedderError, EmbedderRequestError, MissingCredentialsError
from .registry import known_backends, load_embedder, register_backend

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "EmbedderAuthError",
    "EmbedderError",
    "EmbedderRequestError",
    "MissingCredentialsError",
    "known_backends",
    "load_embedder",
    "register_backend",
]
