"""Private, atomic file writes for everything the provider keeps on disk (head weights, keys,
ciphertexts): directories 0700, files 0600, written to a temporary name and renamed, so a crash or a
full disk never leaves a half-written file under a valid name. A full disk becomes `StorageFull`
(507), a clear answer instead of a plain 500."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .errors import StorageFull

#: The errors a write gets when the storage, not the request, is the problem.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


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
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in NO_SPACE:
            raise StorageFull(
                "storage_full", f"the provider's storage is full ({os.strerror(exc.errno or 0)}); nothing was stored"
            ) from None
        raise
