"""SQLite-backed store of float32 vectors keyed by (model_id, sha256 of text).

Why SQLite with float32 blobs rather than .npy files:
* atomicity for free: every write is one transaction, so a crash (or kill -9)
  mid-write leaves either the old state or the new one, never a torn entry;
* concurrent processes on the *same* directory are safe too (WAL journal plus a
  busy timeout), not only processes on different directories;
* lookups of thousands of keys are one indexed query instead of many file opens.

Only the sha256 of each text is stored, never the text: HELIX is a privacy
project and a cache directory should not become a plaintext corpus dump. (A
hash of a short, guessable text can still be confirmed by whoever holds the
cache, so treat the directory as sensitive anyway.)

Connections are opened per operation, which keeps the store safe to use after
``fork`` and from multiple threads, at ~0.1 ms per call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path

import numpy as np

DB_FILENAME = "embeddings.sqlite3"
_BUSY_TIMEOUT_S = 60.0
_QUERY_CHUNK = 500  # stays below SQLite's host-parameter limit on old builds (999)
_VECTOR_DTYPE = np.dtype("<f4")  # explicit little-endian so the file is portable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model_id    TEXT    NOT NULL,
    text_sha256 BLOB    NOT NULL,
    dim         INTEGER NOT NULL,
    vector      BLOB    NOT NULL,
    PRIMARY KEY (model_id, text_sha256)
) WITHOUT ROWID
"""


class VectorStore:
    """Persistent mapping ``(model_id, key) -> float32 vector`` in ``<directory>/embeddings.sqlite3``."""

    def __init__(self, directory: Path) -> None:
        """Create the directory and schema if needed."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_FILENAME
        with closing(self._connect()) as conn:
            # WAL: readers never block the writer; persistent per database file.
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        # NORMAL is crash-safe under WAL (a power cut may drop the last commit, never corrupt).
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def get_many(self, model_id: str, dim: int, keys: Iterable[bytes]) -> dict[bytes, np.ndarray]:
        """Return the stored vectors for whichever of ``keys`` are present.

        Entries whose dimension or byte length does not match ``dim`` are
        ignored (treated as missing) so a bad row can never reach a caller.
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[bytes, np.ndarray] = {}
        nbytes = dim * _VECTOR_DTYPE.itemsize
        with closing(self._connect()) as conn:
            for start in range(0, len(wanted), _QUERY_CHUNK):
                chunk = wanted[start : start + _QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT text_sha256, dim, vector FROM embeddings WHERE model_id = ? AND text_sha256 IN ({marks})",
                    (model_id, *chunk),
                )
                for key, row_dim, blob in rows:
                    if row_dim == dim and len(blob) == nbytes:
                        found[bytes(key)] = np.frombuffer(blob, dtype=_VECTOR_DTYPE).astype(np.float32)
        return found

    def put_many(self, model_id: str, vectors: Mapping[bytes, np.ndarray]) -> None:
        """Store vectors in a single transaction (all or nothing); existing keys are overwritten."""
        rows = []
        for key, vec in vectors.items():
            arr = np.asarray(vec, dtype=_VECTOR_DTYPE)
            if arr.ndim != 1:
                raise ValueError(f"expected a 1-D vector, got shape {arr.shape}")
            rows.append((model_id, key, int(arr.shape[0]), arr.tobytes()))
        if not rows:
            return
        with closing(self._connect()) as conn, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model_id, text_sha256, dim, vector) VALUES (?, ?, ?, ?)",
                rows,
            )

    def count(self, model_id: str | None = None) -> int:
        """Number of stored vectors, optionally for one model (for diagnostics and tests)."""
        with closing(self._connect()) as conn:
            if model_id is None:
                return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            query = "SELECT COUNT(*) FROM embeddings WHERE model_id = ?"
            return int(conn.execute(query, (model_id,)).fetchone()[0])
