"""Content fingerprints for local model files and folders.

Why: a path says nothing about contents (a folder can be re-exported with
fine-tuned weights, a GGUF file replaced by another quantisation), and cache
entries keyed on ``model_id`` must never be shared across different weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT_CHARS = 16


def directory_fingerprint(path: Path) -> str:
    """Short sha256 over every file (relative name + bytes) in a model directory.

    Hidden files and READMEs are skipped because they do not affect outputs.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or file.name.lower().startswith("readme"):
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        with file.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def file_fingerprint(path: Path) -> str:
    """Short sha256 of one file's bytes (~0.3 s for a 250 MB GGUF)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:FINGERPRINT_CHARS]
