"""Private, atomic file writes for what the agent keeps on disk (key metadata, alignment maps):
directories 0700, files 0600, written to a temporary name and renamed, so a crash never leaves a
half-written file under a valid name and no other local user reads the agent's maps or key ids."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(target: Path, data: bytes) -> None:
    """Write `data` to `target` as 0600, atomically (temp file + rename)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
