"""SQLite repository for heads, corpora, registered keys and alignment sessions.

One connection guarded by a lock: request handlers run in a thread pool, and SQLite serialises
writers anyway; WAL keeps readers from blocking. Large values live in the BlobStore; rows hold ids.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, task TEXT NOT NULL, class_names TEXT NOT NULL,
    dim INTEGER NOT NULL, num_classes INTEGER NOT NULL, created_at TEXT NOT NULL,
    weights_blob TEXT NOT NULL, bias_blob TEXT NOT NULL, texts TEXT NOT NULL,
    texts_embeddings_blob TEXT, encoder_model_id TEXT NOT NULL, report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corpora (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL, texts_blob TEXT NOT NULL, embeddings_blob TEXT NOT NULL,
    encoder_model_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, client_name TEXT NOT NULL, purpose TEXT NOT NULL,
    parameter_set TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL, public_key_blob TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    galois_keys_blob TEXT, galois_elements TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, head_id TEXT NOT NULL, corpus_id TEXT NOT NULL, key_id TEXT NOT NULL,
    parameter_set TEXT NOT NULL, state TEXT NOT NULL, num_samples INTEGER NOT NULL,
    feature_dim INTEGER NOT NULL, samples_per_ciphertext INTEGER NOT NULL,
    num_ciphertexts INTEGER NOT NULL, received TEXT NOT NULL, computed_columns INTEGER NOT NULL,
    output_columns INTEGER NOT NULL, error TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    include_head_texts INTEGER NOT NULL, client_model_id TEXT NOT NULL, data_scale_bits INTEGER,
    result_blob TEXT, validation_folds INTEGER NOT NULL DEFAULT 0
);
"""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def parse_dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


class Repository:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added after the first release, for databases created before them."""
        with self._lock:
            have = {r["name"] for r in self._conn.execute("PRAGMA table_info(keys)").fetchall()}
            if "galois_keys_blob" not in have:
                self._conn.execute("ALTER TABLE keys ADD COLUMN galois_keys_blob TEXT")
            if "galois_elements" not in have:
                self._conn.execute("ALTER TABLE keys ADD COLUMN galois_elements TEXT NOT NULL DEFAULT '[]'")
            have = {r["name"] for r in self._conn.execute("PRAGMA table_info(sessions)").fetchall()}
            if "validation_folds" not in have:
                self._conn.execute("ALTER TABLE sessions ADD COLUMN validation_folds INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as c:
            c.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))

    # heads
    def add_head(self, row: dict[str, Any]) -> None:
        row = dict(row, class_names=json.dumps(row["class_names"]), texts=json.dumps(row["texts"]),
                   report=json.dumps(row["report"]))
        self._insert("heads", row)

    def _head(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        for k in ("class_names", "texts", "report"):
            row[k] = json.loads(row[k])
        return row

    def get_head(self, head_id: str) -> dict[str, Any] | None:
        return self._head(self._one("SELECT * FROM heads WHERE id = ?", (head_id,)))

    def list_heads(self) -> list[dict[str, Any]]:
        return [self._head(r) for r in self._all("SELECT * FROM heads ORDER BY created_at")]  # type: ignore[misc]

    def delete_head(self, head_id: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM heads WHERE id = ?", (head_id,)).rowcount > 0

    # corpora
    def add_corpus(self, row: dict[str, Any]) -> None:
        self._insert("corpora", row)

    def get_corpus(self, corpus_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM corpora WHERE id = ?", (corpus_id,))

    def list_corpora(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM corpora ORDER BY created_at")

    def delete_corpus(self, corpus_id: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM corpora WHERE id = ?", (corpus_id,)).rowcount > 0

    # keys
    def add_key(self, row: dict[str, Any]) -> None:
        self._insert("keys", dict(row, galois_elements=json.dumps(row.get("galois_elements", []))))

    @staticmethod
    def _key(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is not None:
            row["galois_elements"] = json.loads(row.get("galois_elements") or "[]")
        return row

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        return self._key(self._one("SELECT * FROM keys WHERE key_id = ?", (key_id,)))

    def list_keys(self) -> list[dict[str, Any]]:
        return [self._key(r) for r in self._all("SELECT * FROM keys WHERE revoked = 0 ORDER BY client_name, created_at")]  # type: ignore[misc]

    def revoke_key(self, key_id: str) -> bool:
        with self.transaction() as c:
            return c.execute("UPDATE keys SET revoked = 1 WHERE key_id = ? AND revoked = 0", (key_id,)).rowcount > 0

    # alignment sessions
    def add_session(self, row: dict[str, Any]) -> None:
        self._insert("sessions", dict(row, received=json.dumps(row["received"])))

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        if row is not None:
            row["received"] = json.loads(row["received"])
        return row

    def update_session(self, session_id: str, **fields: Any) -> None:
        if "received" in fields:
            fields["received"] = json.dumps(fields["received"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as c:
            c.execute(f"UPDATE sessions SET {sets} WHERE session_id = ?", (*fields.values(), session_id))

    def mark_received(self, session_id: str, indices: list[int], data_scale_bits: int) -> dict[str, Any]:
        """Record uploaded ciphertext indices atomically (concurrent chunk uploads must not lose any)."""
        with self.transaction() as c:
            row = c.execute("SELECT received FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            got = set(json.loads(row["received"])) | set(indices)
            c.execute("UPDATE sessions SET received = ?, data_scale_bits = ? WHERE session_id = ?",
                      (json.dumps(sorted(got)), data_scale_bits, session_id))
        return self.get_session(session_id)  # type: ignore[return-value]

    def interrupt_running_sessions(self) -> int:
        """After a restart no worker is computing: say so instead of leaving sessions stuck."""
        with self.transaction() as c:
            return c.execute("UPDATE sessions SET state = 'failed', error = 'interrupted by a provider restart; "
                             "POST .../compute again' WHERE state = 'computing'").rowcount

    def list_sessions(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM sessions ORDER BY created_at")

    def delete_session(self, session_id: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount > 0
