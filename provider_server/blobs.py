"""Content-addressed blob directory for large values (weights, embeddings, ciphertexts).

Why not in SQLite: ciphertext uploads are tens of MB; files keep the database small and let worker
processes read blobs by path without shipping bytes through the parent. Writes are atomic
(temp file + rename) so a crash never leaves a half-written blob under a valid name, and private
(0700 folders, 0600 files: blobs hold head weights and keys); a full disk answers 507.

Blobs no record names any more are removed by the garbage collector (`retention`) once they are
older than a grace period; `put` of content that is already there renews its age, under the same
lock the collector removes under, so a blob about to be named by a new record is never collected.
Replicas share the blob directory, so that lock is also a file lock (`flock` on the root directory):
one replica's put and another's collection of the same blob never interleave."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .private_files import private_dir, write_private


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then the other processes sharing the directory, one at a time."""
        with self._lock:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

    def path(self, blob_id: str) -> Path:
        if not blob_id or "/" in blob_id or blob_id.startswith("."):
            raise ValueError(f"invalid blob id {blob_id!r}")
        return self.root / blob_id[:2] / blob_id

    def put(self, data: bytes, suffix: str = "") -> str:
        blob_id = hashlib.sha256(data).hexdigest() + suffix
        target = self.path(blob_id)
        with self._locked():
            try:
                os.utime(target)  # there already, and in use again: not an orphan for another grace period
                return blob_id
            except FileNotFoundError:
                pass
        private_dir(target.parent)
        write_private(target, data)
        return blob_id

    def put_array(self, arr: np.ndarray) -> str:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return self.put(buf.getvalue(), ".npy")

    def get(self, blob_id: str) -> bytes:
        return self.path(blob_id).read_bytes()

    def get_array(self, blob_id: str) -> np.ndarray:
        return load_array(self.path(blob_id))

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)

    def files(self) -> Iterator[Path]:
        """Every file under the root: blobs and the temporary files of writes in progress (or cut short)."""
        for folder in self.root.iterdir():
            if folder.is_dir():
                yield from (p for p in folder.iterdir() if p.is_file())

    def remove_if_older(self, path: Path, cutoff: float = math.inf) -> int | None:
        """Remove `path` if it was last written or put before `cutoff` (a time.time() value; by
        default: whenever); returns the bytes freed, or None if it was kept or already gone."""
        with self._locked():
            try:
                st = path.stat()
                if st.st_mtime >= cutoff:
                    return None
                path.unlink()
            except FileNotFoundError:
                return None
            return st.st_size


def load_array(path: Path) -> np.ndarray:
    """A stored .npy array (never pickles: a blob is data, not code)."""
    arr: np.ndarray = np.load(path, allow_pickle=False)
    return arr
