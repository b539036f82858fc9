"""The client's uploaded alignment ciphertexts, one file per ciphertext, kept until the result exists.

Why files and not blobs: a session's ciphertexts are read by the workers by path, index by index,
and deleted together; writes are atomic (temp file + rename) so a retried chunk never leaves a
half-written ciphertext under a valid name; a full disk answers 507 (`private_files`)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from .private_files import private_dir, write_private


class SessionFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, session_id: str) -> Path:
        return self.root / session_id

    def write(self, session_id: str, start: int, ciphertexts: list[bytes]) -> None:
        """Store ciphertexts [start, start + len) of a session (blocking; call it off the event loop)."""
        private_dir(self.root)
        folder = private_dir(self.folder(session_id))
        for i, blob in enumerate(ciphertexts):
            write_private(folder / f"{start + i:06d}.ct", blob)

    def write_targets(self, session_id: str, y: np.ndarray) -> Path:
        """The provider's embeddings a computation reads (`y.npy`), kept with the session's ciphertexts
        so they go with them: a content-addressed blob would outlive every session that used it."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(y), allow_pickle=False)
        target = private_dir(self.folder(session_id)) / "y.npy"
        write_private(target, buf.getvalue())
        return target

    def paths(self, session_id: str, count: int) -> list[str]:
        folder = self.folder(session_id)
        return [str(folder / f"{i:06d}.ct") for i in range(count)]

    def remove(self, session_id: str) -> None:
        shutil.rmtree(self.folder(session_id), ignore_errors=True)
