"""Private, atomic file writes for what either daemon keeps on disk (head weights, keys, ciphertexts,
key metadata, maps): directories 0700, files 0600, written to a temporary name and renamed, so a crash
or a full disk never leaves a half-written file under a valid name and no other local user reads them.
A full disk raises `NoSpace`, which each daemon turns into its own clear answer."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

#: The errors a write gets when the storage, not the request, is the problem.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class NoSpace(OSError):
    """The storage is full (or a quota or file-size limit was hit); nothing was written."""


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(target: Path, data: bytes) -> None:
    """Write `data` to `target` as 0600, atomically (temp file + rename); the temporary file never
    outlives a failure."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise NoSpace(exc.errno, os.strerror(exc.errno or 0)) from None
        raise
