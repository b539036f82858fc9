"""Readiness checks shared by both daemons (`/readyz`): liveness says the process answers, readiness
says it can do its work now. Each check returns None when fine, else a sentence naming the problem."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ApiError


def writable_dir(path: Path) -> str | None:
    """None if a file can be created (and removed) in `path`: a full disk, a read-only mount or lost
    permissions all make a daemon unable to keep what it is asked to keep."""
    try:
        fd, name = tempfile.mkstemp(prefix=".readyz-", dir=path)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return f"the data directory {path} is not writable: {exc.strerror or exc}"
    return None


def require_ready(reasons: list[str | None]) -> dict[str, str]:
    """The /readyz answer: 200 {"status": "ready"}, or 503 `not_ready` naming every failed check."""
    failed = [r for r in reasons if r]
    if failed:
        raise ApiError(503, "not_ready", "; ".join(failed))
    return {"status": "ready"}
