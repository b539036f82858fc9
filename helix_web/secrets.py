"""Secrets read from files, so a token never has to sit in a command line (visible to every local user in
`ps`) or in a process environment dump."""

from __future__ import annotations

from pathlib import Path


def read_secret_file(path: Path, what: str) -> str:
    """The first line of `path`, stripped; a clear error if the file is missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    lines = text.splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise ValueError(f"the {what} file {path} is empty")
    return value
