"""The provider's private files (`helix_web.private_files`), with a full disk answered as
`StorageFull` (507) instead of a plain 500."""

from __future__ import annotations

from pathlib import Path

from helix_web.private_files import NoSpace, private_dir
from helix_web.private_files import write_private as _write_private

from .errors import StorageFull

__all__ = ["private_dir", "write_private"]


def write_private(target: Path, data: bytes) -> None:
    """Write `data` to `target` as 0600, atomically; a full disk is `StorageFull`."""
    try:
        _write_private(target, data)
    except NoSpace as exc:
        raise StorageFull(
            "storage_full", f"the provider's storage is full ({exc.strerror}); nothing was stored"
        ) from None
