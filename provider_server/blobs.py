"""Content-addressed blob directory for large values (weights, embeddings, ciphertexts).

Why not in SQLite: ciphertext uploads are tens of MB; files keep the database small and let worker
processes read blobs by path without shipping bytes through the parent. Writes are atomic
(temp file + rename) so a crash never leaves a half-written blob under a valid name, and private
(0700 folders, 0600 files: blobs hold head weights and keys); a full disk answers 507."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from .private_files import private_dir, write_private


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)

    def path(self, blob_id: str) -> Path:
        if not blob_id or "/" in blob_id or blob_id.startswith("."):
            raise ValueError(f"invalid blob id {blob_id!r}")
        return self.root / blob_id[:2] / blob_id

    def put(self, data: bytes, suffix: str = "") -> str:
        blob_id = hashlib.sha256(data).hexdigest() + suffix
        target = self.path(blob_id)
        if target.exists():
            return blob_id
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


def load_array(path: Path) -> np.ndarray:
    """A stored .npy array (never pickles: a blob is data, not code)."""
    arr: np.ndarray = np.load(path, allow_pickle=False)
    return arr
