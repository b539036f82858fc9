"""The Store on SQLite: one connection guarded by a lock, versioned schema, WAL.

Request handlers run in a thread pool and SQLite serialises writers anyway, so one connection and
a lock are enough; WAL keeps readers from blocking and lets an operator's second connection write
(with a busy timeout). Rows keep the encodings of the first release (ISO-8601 text timestamps, JSON
text lists, integer booleans); this module alone knows them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared_protocol.messages import AlignmentState, JobState, KeyPurpose, MapHolder, OutputMode

from ..errors import StorageFull
from .base import INTERRUPTED_ERROR, JOB_INTERRUPTED_ERROR, RecordExistsError, Store
from .records import (
    ApiKeyRecord,
    AuditRecord,
    Bucket,
    ChallengeRecord,
    Charge,
    CorpusRecord,
    Counter,
    HeadRecord,
    JobRecord,
    KeyRecord,
    Quotas,
    Refusal,
    SessionRecord,
    TenantRecord,
    TrainingReport,
)

#: The counter a key's and a session's stored bytes belong to (period "": it never resets).
STORAGE_COUNTER = "storage"


@dataclass(frozen=True)
class Migration:
    """One step of the schema; `version` is the schema version after it."""

    version: int
    purpose: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "heads, corpora, keys and alignment sessions",
        (
            """CREATE TABLE heads (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, task TEXT NOT NULL, class_names TEXT NOT NULL,
            dim INTEGER NOT NULL, num_classes INTEGER NOT NULL, created_at TEXT NOT NULL,
            weights_blob TEXT NOT NULL, bias_blob TEXT NOT NULL, texts TEXT NOT NULL,
            texts_embeddings_blob TEXT, encoder_model_id TEXT NOT NULL, report TEXT NOT NULL)""",
            """CREATE TABLE corpora (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL, texts_blob TEXT NOT NULL, embeddings_blob TEXT NOT NULL,
            encoder_model_id TEXT NOT NULL)""",
            """CREATE TABLE keys (
            key_id TEXT PRIMARY KEY, client_name TEXT NOT NULL, purpose TEXT NOT NULL,
            parameter_set TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL, public_key_blob TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY, head_id TEXT NOT NULL, corpus_id TEXT NOT NULL, key_id TEXT NOT NULL,
            parameter_set TEXT NOT NULL, state TEXT NOT NULL, num_samples INTEGER NOT NULL,
            feature_dim INTEGER NOT NULL, samples_per_ciphertext INTEGER NOT NULL,
            num_ciphertexts INTEGER NOT NULL, received TEXT NOT NULL, computed_columns INTEGER NOT NULL,
            output_columns INTEGER NOT NULL, error TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
            include_head_texts INTEGER NOT NULL, client_model_id TEXT NOT NULL, data_scale_bits INTEGER,
            result_blob TEXT)""",
        ),
    ),
    Migration(
        2,
        "alignment keys carry Galois keys for the packing tree",
        (
            "ALTER TABLE keys ADD COLUMN galois_keys_blob TEXT",
            "ALTER TABLE keys ADD COLUMN galois_elements TEXT NOT NULL DEFAULT '[]'",
        ),
    ),
    Migration(
        3,
        "per-fold alignment results",
        ("ALTER TABLE sessions ADD COLUMN validation_folds INTEGER NOT NULL DEFAULT 0",),
    ),
    Migration(
        4,
        "key challenges: the seeds the uniform halves of registered keys are expanded from",
        (
            """CREATE TABLE IF NOT EXISTS challenges (
            challenge_id TEXT PRIMARY KEY, seed TEXT NOT NULL, created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0)""",
        ),
    ),
    Migration(
        5,
        "per-head output modes (heads before them answer logits)",
        ("ALTER TABLE heads ADD COLUMN output_mode TEXT NOT NULL DEFAULT 'logits'",),
    ),
    Migration(
        6,
        "tenants, API keys, owners of keys, challenges and sessions, usage counters, rate buckets, "
        "and the append-only audit log (rows from before belong to no tenant and are unreachable)",
        (
            """CREATE TABLE tenants (
            tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0, queries_per_day INTEGER, alignments_per_day INTEGER,
            storage_bytes INTEGER, rate_per_second REAL, rate_burst INTEGER)""",
            """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
            secret_sha256 TEXT NOT NULL, created_at TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
            "ALTER TABLE keys ADD COLUMN tenant_id TEXT",
            "ALTER TABLE keys ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE challenges ADD COLUMN tenant_id TEXT",
            "ALTER TABLE sessions ADD COLUMN tenant_id TEXT",
            "ALTER TABLE sessions ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0",
            """CREATE TABLE usage_counters (
            tenant_id TEXT NOT NULL, counter TEXT NOT NULL, period TEXT NOT NULL, value INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, counter, period))""",
            """CREATE TABLE rate_buckets (
            tenant_id TEXT NOT NULL, bucket TEXT NOT NULL, tokens REAL NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, bucket))""",
            """CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, tenant_id TEXT, actor TEXT NOT NULL,
            action TEXT NOT NULL, subject TEXT, count INTEGER NOT NULL, request_id TEXT)""",
            "CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq)",
            """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
            """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        ),
    ),
    Migration(
        7,
        "provider-held maps: who may hold a head's map, heads derived for one tenant, and provider-held "
        "sessions (heads and sessions from before are client-held)",
        (
            "ALTER TABLE heads ADD COLUMN map_holder TEXT NOT NULL DEFAULT 'client'",
            "ALTER TABLE heads ADD COLUMN base_head_id TEXT",
            "ALTER TABLE heads ADD COLUMN tenant_id TEXT",
            "CREATE INDEX heads_base ON heads (base_head_id)",
            "ALTER TABLE sessions ADD COLUMN map_holder TEXT NOT NULL DEFAULT 'client'",
            "ALTER TABLE sessions ADD COLUMN map_method TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE sessions ADD COLUMN map_params TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE sessions ADD COLUMN derived_head_id TEXT",
            "ALTER TABLE sessions ADD COLUMN map_choice TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    Migration(
        8,
        "admin jobs (head trainings run as jobs, their state kept across restarts)",
        (
            """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, head_id TEXT NOT NULL,
            created_at TEXT NOT NULL, timeout_seconds REAL NOT NULL, started_at TEXT, finished_at TEXT,
            pid INTEGER, seconds REAL, error_code TEXT, error TEXT)""",
            "CREATE INDEX jobs_created ON jobs (created_at)",
        ),
    ),
    Migration(
        9,
        "the replica computing a session and its lease (several provider processes share one database)",
        (
            "ALTER TABLE sessions ADD COLUMN compute_owner TEXT",
            "ALTER TABLE sessions ADD COLUMN lease_expires_at TEXT",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def _unversioned_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database without a version table: 0 if it is empty, else read off
    the columns the releases before the version table had added (their last, if every one is there;
    a database with every later column too, which only a test builds, reads as the latest).
    Runs once per such database; afterwards the version table says."""
    if not _columns(conn, "heads"):
        return 0
    if "lease_expires_at" in _columns(conn, "sessions"):
        return 9
    if _columns(conn, "jobs"):
        return 8
    if "map_holder" in _columns(conn, "heads"):
        return 7
    if _columns(conn, "tenants"):
        return 6
    if "output_mode" in _columns(conn, "heads"):
        return 5
    if _columns(conn, "challenges"):
        return 4
    if "validation_folds" in _columns(conn, "sessions"):
        return 3
    return 2 if "galois_elements" in _columns(conn, "keys") else 1


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION, one migration per transaction; returns the version before.
    Each step reads the version again inside its transaction: replicas starting at once on one
    database each apply a step only if no other has applied it meanwhile."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _columns(conn, "schema_version"):
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (_unversioned_version(conn),))
        (start,) = conn.execute("SELECT version FROM schema_version").fetchone()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if start > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {start}; this provider knows up to {SCHEMA_VERSION}")
    for step in MIGRATIONS:
        if step.version <= start:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            (current,) = conn.execute("SELECT version FROM schema_version").fetchone()
            if step.version <= current:  # another process applied it since `start` was read
                conn.execute("COMMIT")
                continue
            for sql in step.statements:
                conn.execute(sql)
            conn.execute("UPDATE schema_version SET version = ?", (step.version,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return int(start)


def _head(r: sqlite3.Row) -> HeadRecord:
    report = json.loads(r["report"])
    return HeadRecord(
        id=r["id"],
        name=r["name"],
        task=r["task"],
        class_names=tuple(json.loads(r["class_names"])),
        dim=r["dim"],
        num_classes=r["num_classes"],
        created_at=_dt(r["created_at"]),
        weights_blob=r["weights_blob"],
        bias_blob=r["bias_blob"],
        texts=tuple(json.loads(r["texts"])),
        texts_embeddings_blob=r["texts_embeddings_blob"],
        encoder_model_id=r["encoder_model_id"],
        report=TrainingReport(train_examples=report["train_examples"], train_accuracy=report["train_accuracy"]),
        output_mode=OutputMode(r["output_mode"]),
        map_holder=MapHolder(r["map_holder"]),
        base_head_id=r["base_head_id"],
        tenant_id=r["tenant_id"],
    )


def _head_row(h: HeadRecord) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "task": h.task,
        "class_names": json.dumps(list(h.class_names)),
        "dim": h.dim,
        "num_classes": h.num_classes,
        "created_at": _iso(h.created_at),
        "weights_blob": h.weights_blob,
        "bias_blob": h.bias_blob,
        "texts": json.dumps(list(h.texts)),
        "texts_embeddings_blob": h.texts_embeddings_blob,
        "encoder_model_id": h.encoder_model_id,
        "report": json.dumps({"train_examples": h.report.train_examples, "train_accuracy": h.report.train_accuracy}),
        "output_mode": h.output_mode.value,
        "map_holder": h.map_holder.value,
        "base_head_id": h.base_head_id,
        "tenant_id": h.tenant_id,
    }


def _corpus(r: sqlite3.Row) -> CorpusRecord:
    return CorpusRecord(
        id=r["id"],
        name=r["name"],
        size=r["size"],
        sha256=r["sha256"],
        created_at=_dt(r["created_at"]),
        texts_blob=r["texts_blob"],
        embeddings_blob=r["embeddings_blob"],
        encoder_model_id=r["encoder_model_id"],
    )


def _corpus_row(c: CorpusRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "size": c.size,
        "sha256": c.sha256,
        "created_at": _iso(c.created_at),
        "texts_blob": c.texts_blob,
        "embeddings_blob": c.embeddings_blob,
        "encoder_model_id": c.encoder_model_id,
    }


def _key(r: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        key_id=r["key_id"],
        client_name=r["client_name"],
        purpose=KeyPurpose(r["purpose"]),
        parameter_set=r["parameter_set"],
        fingerprint=r["fingerprint"],
        created_at=_dt(r["created_at"]),
        expires_at=_dt(r["expires_at"]),
        public_key_blob=r["public_key_blob"],
        revoked=bool(r["revoked"]),
        galois_keys_blob=r["galois_keys_blob"],
        galois_elements=tuple(json.loads(r["galois_elements"])),
        tenant_id=r["tenant_id"],
        stored_bytes=r["stored_bytes"],
    )


def _key_row(k: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "client_name": k.client_name,
        "purpose": k.purpose.value,
        "parameter_set": k.parameter_set,
        "fingerprint": k.fingerprint,
        "created_at": _iso(k.created_at),
        "expires_at": _iso(k.expires_at),
        "public_key_blob": k.public_key_blob,
        "revoked": int(k.revoked),
        "galois_keys_blob": k.galois_keys_blob,
        "galois_elements": json.dumps(list(k.galois_elements)),
        "tenant_id": k.tenant_id,
        "stored_bytes": k.stored_bytes,
    }


def _challenge(r: sqlite3.Row) -> ChallengeRecord:
    return ChallengeRecord(
        challenge_id=r["challenge_id"],
        seed=bytes.fromhex(r["seed"]),
        created_at=_dt(r["created_at"]),
        expires_at=_dt(r["expires_at"]),
        used=bool(r["used"]),
        tenant_id=r["tenant_id"],
    )


def _challenge_row(c: ChallengeRecord) -> dict[str, Any]:
    return {
        "challenge_id": c.challenge_id,
        "seed": c.seed.hex(),
        "created_at": _iso(c.created_at),
        "expires_at": _iso(c.expires_at),
        "used": int(c.used),
        "tenant_id": c.tenant_id,
    }


def _session(r: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        session_id=r["session_id"],
        head_id=r["head_id"],
        corpus_id=r["corpus_id"],
        key_id=r["key_id"],
        parameter_set=r["parameter_set"],
        state=AlignmentState(r["state"]),
        num_samples=r["num_samples"],
        feature_dim=r["feature_dim"],
        samples_per_ciphertext=r["samples_per_ciphertext"],
        num_ciphertexts=r["num_ciphertexts"],
        received=tuple(json.loads(r["received"])),
        computed_columns=r["computed_columns"],
        output_columns=r["output_columns"],
        error=r["error"],
        created_at=_dt(r["created_at"]),
        expires_at=_dt(r["expires_at"]),
        include_head_texts=bool(r["include_head_texts"]),
        client_model_id=r["client_model_id"],
        data_scale_bits=r["data_scale_bits"],
        result_blob=r["result_blob"],
        validation_folds=r["validation_folds"],
        tenant_id=r["tenant_id"],
        stored_bytes=r["stored_bytes"],
        map_holder=MapHolder(r["map_holder"]),
        map_method=r["map_method"],
        map_params=_pairs(r["map_params"]),
        derived_head_id=r["derived_head_id"],
        map_choice=_pairs(r["map_choice"]),
        compute_owner=r["compute_owner"],
        lease_expires_at=_dt(r["lease_expires_at"]) if r["lease_expires_at"] else None,
    )


def _pairs(text: str) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((str(k), float(v)) for k, v in json.loads(text).items()))


def _session_row(s: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "head_id": s.head_id,
        "corpus_id": s.corpus_id,
        "key_id": s.key_id,
        "parameter_set": s.parameter_set,
        "state": s.state.value,
        "num_samples": s.num_samples,
        "feature_dim": s.feature_dim,
        "samples_per_ciphertext": s.samples_per_ciphertext,
        "num_ciphertexts": s.num_ciphertexts,
        "received": json.dumps(sorted(s.received)),
        "computed_columns": s.computed_columns,
        "output_columns": s.output_columns,
        "error": s.error,
        "created_at": _iso(s.created_at),
        "expires_at": _iso(s.expires_at),
        "include_head_texts": int(s.include_head_texts),
        "client_model_id": s.client_model_id,
        "data_scale_bits": s.data_scale_bits,
        "result_blob": s.result_blob,
        "validation_folds": s.validation_folds,
        "tenant_id": s.tenant_id,
        "stored_bytes": s.stored_bytes,
        "map_holder": s.map_holder.value,
        "map_method": s.map_method,
        "map_params": json.dumps(dict(s.map_params)),
        "derived_head_id": s.derived_head_id,
        "map_choice": json.dumps(dict(s.map_choice)),
        "compute_owner": s.compute_owner,
        "lease_expires_at": _iso(s.lease_expires_at) if s.lease_expires_at else None,
    }


def _tenant(r: sqlite3.Row) -> TenantRecord:
    return TenantRecord(
        tenant_id=r["tenant_id"],
        name=r["name"],
        created_at=_dt(r["created_at"]),
        disabled=bool(r["disabled"]),
        quotas=Quotas(
            queries_per_day=r["queries_per_day"],
            alignments_per_day=r["alignments_per_day"],
            storage_bytes=r["storage_bytes"],
            rate_per_second=r["rate_per_second"],
            rate_burst=r["rate_burst"],
        ),
    )


def _quota_row(q: Quotas) -> dict[str, Any]:
    return {
        "queries_per_day": q.queries_per_day,
        "alignments_per_day": q.alignments_per_day,
        "storage_bytes": q.storage_bytes,
        "rate_per_second": q.rate_per_second,
        "rate_burst": q.rate_burst,
    }


def _tenant_row(t: TenantRecord) -> dict[str, Any]:
    return {
        "tenant_id": t.tenant_id,
        "name": t.name,
        "created_at": _iso(t.created_at),
        "disabled": int(t.disabled),
        **_quota_row(t.quotas),
    }


def _api_key(r: sqlite3.Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=r["key_id"],
        tenant_id=r["tenant_id"],
        secret_sha256=r["secret_sha256"],
        created_at=_dt(r["created_at"]),
        revoked=bool(r["revoked"]),
    )


def _api_key_row(k: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "tenant_id": k.tenant_id,
        "secret_sha256": k.secret_sha256,
        "created_at": _iso(k.created_at),
        "revoked": int(k.revoked),
    }


def _audit(r: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        seq=r["seq"],
        at=_dt(r["at"]),
        tenant_id=r["tenant_id"],
        actor=r["actor"],
        action=r["action"],
        subject=r["subject"],
        count=r["count"],
        request_id=r["request_id"],
    )


def _dt_or_none(text: str | None) -> datetime | None:
    return _dt(text) if text else None


def _job(r: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=r["job_id"],
        kind=r["kind"],
        state=JobState(r["state"]),
        head_id=r["head_id"],
        created_at=_dt(r["created_at"]),
        timeout_seconds=r["timeout_seconds"],
        started_at=_dt_or_none(r["started_at"]),
        finished_at=_dt_or_none(r["finished_at"]),
        pid=r["pid"],
        seconds=r["seconds"],
        error_code=r["error_code"],
        error=r["error"],
    )


def _job_row(j: JobRecord) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "kind": j.kind,
        "state": j.state.value,
        "head_id": j.head_id,
        "created_at": _iso(j.created_at),
        "timeout_seconds": j.timeout_seconds,
        "started_at": _iso(j.started_at) if j.started_at else None,
        "finished_at": _iso(j.finished_at) if j.finished_at else None,
        "pid": j.pid,
        "seconds": j.seconds,
        "error_code": j.error_code,
        "error": j.error,
    }


#: "state IN (queued, running)" as SQL with its arguments.
_ACTIVE = "state IN (?, ?)"
_ACTIVE_ARGS = (JobState.queued.value, JobState.running.value)


@contextmanager
def _disk_full_as_storage_full() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
            raise
        raise StorageFull("storage_full", "the provider's storage is full (database); nothing was stored") from None


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Private from its first byte: SQLite gives the -wal and -shm files the database's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk rolls it back and answers 507 (`StorageFull`)."""
        with self._lock, _disk_full_as_storage_full():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._transaction() as c:
                c.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise RecordExistsError(f"{table}: {exc}") from None

    def _change(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._transaction() as c:
            return c.execute(sql, args).rowcount

    # heads
    def add_head(self, head: HeadRecord) -> None:
        self._insert("heads", _head_row(head))

    def get_head(self, head_id: str) -> HeadRecord | None:
        row = self._one("SELECT * FROM heads WHERE id = ?", (head_id,))
        return _head(row) if row else None

    def list_heads(self) -> list[HeadRecord]:
        return [_head(r) for r in self._all("SELECT * FROM heads ORDER BY created_at")]

    def delete_head(self, head_id: str) -> bool:
        with self._transaction() as c:
            deleted = c.execute("DELETE FROM heads WHERE id = ?", (head_id,)).rowcount
            if deleted:
                c.execute("DELETE FROM heads WHERE base_head_id = ?", (head_id,))
        return deleted > 0

    # corpora
    def add_corpus(self, corpus: CorpusRecord) -> None:
        self._insert("corpora", _corpus_row(corpus))

    def get_corpus(self, corpus_id: str) -> CorpusRecord | None:
        row = self._one("SELECT * FROM corpora WHERE id = ?", (corpus_id,))
        return _corpus(row) if row else None

    def list_corpora(self) -> list[CorpusRecord]:
        return [_corpus(r) for r in self._all("SELECT * FROM corpora ORDER BY created_at")]

    def delete_corpus(self, corpus_id: str) -> bool:
        return self._change("DELETE FROM corpora WHERE id = ?", (corpus_id,)) > 0

    # keys
    def add_key(self, key: KeyRecord) -> None:
        self._insert("keys", _key_row(key))

    def get_key(self, key_id: str) -> KeyRecord | None:
        row = self._one("SELECT * FROM keys WHERE key_id = ?", (key_id,))
        return _key(row) if row else None

    def list_keys(self) -> list[KeyRecord]:
        return [_key(r) for r in self._all("SELECT * FROM keys WHERE revoked = 0 ORDER BY client_name, created_at")]

    def revoke_key(self, key_id: str) -> bool:
        with self._transaction() as c:
            row = c.execute(
                "SELECT tenant_id, stored_bytes FROM keys WHERE key_id = ? AND revoked = 0", (key_id,)
            ).fetchone()
            if row is None:
                return False
            c.execute("UPDATE keys SET revoked = 1 WHERE key_id = ?", (key_id,))
            _release(c, row["tenant_id"], row["stored_bytes"])
        return True

    # key challenges
    def add_challenge(self, challenge: ChallengeRecord) -> None:
        self._insert("challenges", _challenge_row(challenge))

    def take_challenge(self, challenge_id: str, tenant_id: str) -> ChallengeRecord | None:
        with self._transaction() as c:
            row = c.execute(
                "SELECT * FROM challenges WHERE challenge_id = ? AND tenant_id = ?", (challenge_id, tenant_id)
            ).fetchone()
            if row is not None:
                c.execute("UPDATE challenges SET used = 1 WHERE challenge_id = ?", (challenge_id,))
        return _challenge(row) if row else None

    def prune_challenges(self, expired_before: datetime) -> int:
        return self._change("DELETE FROM challenges WHERE expires_at < ?", (_iso(expired_before),))

    # alignment sessions
    def add_session(self, session: SessionRecord) -> None:
        self._insert("sessions", _session_row(session))

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        return _session(row) if row else None

    def mark_received(
        self, session_id: str, indices: Iterable[int], data_scale_bits: int, added_bytes: int = 0
    ) -> SessionRecord | None:
        with self._transaction() as c:
            row = c.execute("SELECT received FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            got = set(json.loads(row["received"])) | set(indices)
            c.execute(
                "UPDATE sessions SET received = ?, data_scale_bits = ?, stored_bytes = stored_bytes + ? "
                "WHERE session_id = ?",
                (json.dumps(sorted(got)), data_scale_bits, added_bytes, session_id),
            )
            updated = c.execute("SELECT * FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return _session(updated)

    def claim_for_compute(
        self,
        session_id: str,
        owner: str | None = None,
        lease_until: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        computing, done = AlignmentState.computing.value, AlignmentState.done.value
        expired = "(state = ? AND lease_expires_at IS NOT NULL AND lease_expires_at < ?)"
        return (
            self._change(
                "UPDATE sessions SET state = ?, computed_columns = 0, error = NULL, compute_owner = ?, "
                f"lease_expires_at = ? WHERE session_id = ? AND (state NOT IN (?, ?) OR {expired})",
                (
                    computing,
                    owner,
                    _iso(lease_until) if lease_until else None,
                    session_id,
                    computing,
                    done,
                    computing,
                    _iso(now) if now else "",  # no `now`: no lease counts as expired
                ),
            )
            > 0
        )

    def renew_lease(self, session_id: str, owner: str, lease_until: datetime) -> bool:
        return (
            self._change(
                "UPDATE sessions SET lease_expires_at = ? WHERE session_id = ? AND state = ? AND compute_owner = ?",
                (_iso(lease_until), session_id, AlignmentState.computing.value, owner),
            )
            > 0
        )

    def add_computed_columns(self, session_id: str, columns: int, owner: str | None = None) -> None:
        where, args = _held_by(owner)
        self._change(
            f"UPDATE sessions SET computed_columns = computed_columns + ? WHERE session_id = ?{where}",
            (columns, session_id, *args),
        )

    def complete_session(
        self,
        session_id: str,
        result_blob: str,
        computed_columns: int,
        result_bytes: int = 0,
        owner: str | None = None,
    ) -> bool:
        where, args = _held_by(owner)
        with self._transaction() as c:
            row = c.execute(
                f"SELECT tenant_id, stored_bytes FROM sessions WHERE session_id = ?{where}", (session_id, *args)
            ).fetchone()
            if row is None:
                return False
            c.execute(
                "UPDATE sessions SET state = ?, result_blob = ?, computed_columns = ?, stored_bytes = ?, "
                "lease_expires_at = NULL WHERE session_id = ?",
                (AlignmentState.done.value, result_blob, computed_columns, result_bytes, session_id),
            )
            _add(c, row["tenant_id"], STORAGE_COUNTER, "", result_bytes - row["stored_bytes"])
        return True

    def complete_provider_held(
        self, session_id: str, head: HeadRecord, choice: Sequence[tuple[str, float]], computed_columns: int
    ) -> bool:
        with self._transaction() as c:
            row = c.execute(
                "SELECT tenant_id, stored_bytes, head_id FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None or c.execute("SELECT 1 FROM heads WHERE id = ?", (row["head_id"],)).fetchone() is None:
                return False
            row_values = _head_row(head)
            cols, marks = ", ".join(row_values), ", ".join("?" for _ in row_values)
            try:
                c.execute(f"INSERT INTO heads ({cols}) VALUES ({marks})", tuple(row_values.values()))
            except sqlite3.IntegrityError as exc:
                raise RecordExistsError(f"heads: {exc}") from None
            c.execute(
                "UPDATE sessions SET state = ?, derived_head_id = ?, map_choice = ?, computed_columns = ?, "
                "stored_bytes = 0 WHERE session_id = ?",
                (AlignmentState.done.value, head.id, json.dumps(dict(choice)), computed_columns, session_id),
            )
            _release(c, row["tenant_id"], row["stored_bytes"])
        return True

    def fail_session(self, session_id: str, error: str, owner: str | None = None) -> bool:
        where, args = _held_by(owner)
        return (
            self._change(
                f"UPDATE sessions SET state = ?, error = ?, lease_expires_at = NULL WHERE session_id = ?{where}",
                (AlignmentState.failed.value, error, session_id, *args),
            )
            > 0
        )

    def interrupt_running_sessions(
        self, *, owner: str | None = None, expired_before: datetime | None = None, session_id: str | None = None
    ) -> int:
        where = ["state = ?"]
        args: list[Any] = [AlignmentState.computing.value]
        if owner is not None:
            where.append("compute_owner = ?")
            args.append(owner)
        if expired_before is not None:
            where.append("lease_expires_at IS NOT NULL AND lease_expires_at < ?")
            args.append(_iso(expired_before))
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        return self._change(
            f"UPDATE sessions SET state = ?, error = ?, lease_expires_at = NULL WHERE {' AND '.join(where)}",
            (AlignmentState.failed.value, INTERRUPTED_ERROR, *args),
        )

    def delete_session(self, session_id: str) -> bool:
        with self._transaction() as c:
            row = c.execute(
                "SELECT tenant_id, stored_bytes FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return False
            c.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            _release(c, row["tenant_id"], row["stored_bytes"])
        return True

    # retention
    def all_keys(self) -> list[KeyRecord]:
        return [_key(r) for r in self._all("SELECT * FROM keys ORDER BY created_at")]

    def delete_key(self, key_id: str) -> bool:
        """Delete a key's record; an unrevoked key's bytes leave its tenant's storage count with it (a
        revoked key's left at revocation)."""
        with self._transaction() as c:
            row = c.execute("SELECT tenant_id, stored_bytes, revoked FROM keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            c.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            if not row["revoked"]:
                _release(c, row["tenant_id"], row["stored_bytes"])
        return True

    def list_sessions(self) -> list[SessionRecord]:
        return [_session(r) for r in self._all("SELECT * FROM sessions ORDER BY created_at")]

    # tenants and API keys
    def add_tenant(self, tenant: TenantRecord) -> None:
        self._insert("tenants", _tenant_row(tenant))

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        row = self._one("SELECT * FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return _tenant(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [_tenant(r) for r in self._all("SELECT * FROM tenants ORDER BY created_at, tenant_id")]

    def update_tenant(
        self, tenant_id: str, *, disabled: bool | None = None, quotas: Quotas | None = None
    ) -> TenantRecord | None:
        values: dict[str, Any] = {}
        if disabled is not None:
            values["disabled"] = int(disabled)
        if quotas is not None:
            values.update(_quota_row(quotas))
        with self._transaction() as c:
            if values:
                sets = ", ".join(f"{col} = ?" for col in values)
                c.execute(f"UPDATE tenants SET {sets} WHERE tenant_id = ?", (*values.values(), tenant_id))
            row = c.execute("SELECT * FROM tenants WHERE tenant_id = ?", (tenant_id,)).fetchone()
        return _tenant(row) if row else None

    def add_api_key(self, key: ApiKeyRecord) -> None:
        self._insert("api_keys", _api_key_row(key))

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._one("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
        return _api_key(row) if row else None

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        rows = self._all("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id", (tenant_id,))
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        return (
            self._change(
                "UPDATE api_keys SET revoked = 1 WHERE key_id = ? AND tenant_id = ? AND revoked = 0",
                (key_id, tenant_id),
            )
            > 0
        )

    # usage, quotas and rate limits
    def admit(self, tenant_id: str, charges: Sequence[Charge], bucket: Bucket | None, now: datetime) -> Refusal | None:
        with self._transaction() as c:
            tokens = None
            if bucket is not None:
                row = c.execute(
                    "SELECT tokens, updated_at FROM rate_buckets WHERE tenant_id = ? AND bucket = ?",
                    (tenant_id, bucket.name),
                ).fetchone()
                tokens = refill(bucket, row["tokens"] if row else None, _dt(row["updated_at"]) if row else None, now)
                if tokens < 1.0:
                    return Refusal(bucket.name, wait_seconds=(1.0 - tokens) / bucket.rate_per_second)
            for charge in charges:
                if charge.limit is not None and _value(c, tenant_id, charge) + charge.amount > charge.limit:
                    return Refusal(charge.counter)
            if bucket is not None and tokens is not None:
                c.execute(
                    "INSERT INTO rate_buckets (tenant_id, bucket, tokens, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tenant_id, bucket) DO UPDATE SET tokens = excluded.tokens, "
                    "updated_at = excluded.updated_at",
                    (tenant_id, bucket.name, tokens - 1.0, _iso(now)),
                )
            for charge in charges:
                _add(c, tenant_id, charge.counter, charge.period, charge.amount)
        return None

    def refund(self, tenant_id: str, charges: Sequence[Charge]) -> None:
        with self._transaction() as c:
            for charge in charges:
                _add(c, tenant_id, charge.counter, charge.period, -charge.amount)

    def usage(self, tenant_id: str, periods: Sequence[str]) -> list[Counter]:
        if not periods:
            return []
        marks = ", ".join("?" for _ in periods)
        rows = self._all(
            f"SELECT counter, period, value FROM usage_counters WHERE tenant_id = ? AND period IN ({marks}) "
            "AND value > 0 ORDER BY counter, period",
            (tenant_id, *periods),
        )
        return [Counter(counter=r["counter"], period=r["period"], value=r["value"]) for r in rows]

    # audit log
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO audit_log (at, tenant_id, actor, action, subject, count, request_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _iso(record.at),
                    record.tenant_id,
                    record.actor,
                    record.action,
                    record.subject,
                    record.count,
                    record.request_id,
                ),
            )
            seq = cur.lastrowid
        return replace(record, seq=int(seq or 0))

    def list_audit(self, tenant_id: str | None, after_seq: int, limit: int) -> list[AuditRecord]:
        if tenant_id is None:
            rows = self._all("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        else:
            rows = self._all(
                "SELECT * FROM audit_log WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (tenant_id, after_seq, limit),
            )
        return [_audit(r) for r in rows]

    # admin jobs
    def add_job(self, job: JobRecord, max_active: int) -> bool:
        row = _job_row(job)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._transaction() as c:
                (active,) = c.execute(
                    f"SELECT COUNT(*) FROM jobs WHERE kind = ? AND {_ACTIVE}", (job.kind, *_ACTIVE_ARGS)
                ).fetchone()
                if active >= max_active:
                    return False
                c.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise RecordExistsError(f"jobs: {exc}") from None
        return True

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job(row) if row else None

    def list_jobs(self, limit: int) -> list[JobRecord]:
        return [_job(r) for r in self._all("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))]

    def start_job(self, job_id: str, now: datetime) -> bool:
        return (
            self._change(
                "UPDATE jobs SET state = ?, started_at = ? WHERE job_id = ? AND state = ?",
                (JobState.running.value, _iso(now), job_id, JobState.queued.value),
            )
            > 0
        )

    def set_job_pid(self, job_id: str, pid: int | None) -> None:
        self._change("UPDATE jobs SET pid = ? WHERE job_id = ?", (pid, job_id))

    def cancel_job(self, job_id: str, now: datetime, reason: str) -> tuple[JobRecord, bool] | None:
        with self._transaction() as c:
            changed = c.execute(
                f"UPDATE jobs SET state = ?, finished_at = ?, pid = NULL, error_code = ?, error = ? "
                f"WHERE job_id = ? AND {_ACTIVE}",
                (JobState.cancelled.value, _iso(now), "job_cancelled", reason, job_id, *_ACTIVE_ARGS),
            ).rowcount
            row = c.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return (_job(row), changed > 0) if row else None

    def fail_job(self, job_id: str, now: datetime, error_code: str, error: str) -> bool:
        return (
            self._change(
                f"UPDATE jobs SET state = ?, finished_at = ?, pid = NULL, error_code = ?, error = ? "
                f"WHERE job_id = ? AND {_ACTIVE}",
                (JobState.failed.value, _iso(now), error_code, error, job_id, *_ACTIVE_ARGS),
            )
            > 0
        )

    def complete_job(self, job_id: str, now: datetime, head: HeadRecord, seconds: float) -> bool:
        row = _head_row(head)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._transaction() as c:
                changed = c.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, pid = NULL, seconds = ? "
                    "WHERE job_id = ? AND state = ?",
                    (JobState.succeeded.value, _iso(now), seconds, job_id, JobState.running.value),
                ).rowcount
                if changed == 0:
                    return False
                c.execute(f"INSERT INTO heads ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise RecordExistsError(f"heads: {exc}") from None
        return True

    def interrupt_running_jobs(self) -> int:
        return self._change(
            f"UPDATE jobs SET state = ?, finished_at = ?, pid = NULL, error_code = ?, error = ? WHERE {_ACTIVE}",
            (JobState.failed.value, _iso(datetime.now(UTC)), "job_interrupted", JOB_INTERRUPTED_ERROR, *_ACTIVE_ARGS),
        )


def _held_by(owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The condition (and its arguments) that a computing session is held by `owner`; none for None."""
    if owner is None:
        return "", ()
    return " AND state = ? AND compute_owner = ?", (AlignmentState.computing.value, owner)


def refill(bucket: Bucket, tokens: float | None, updated_at: datetime | None, now: datetime) -> float:
    """The bucket's tokens at `now`: full when new, else refilled by the time passed (never above burst;
    a clock that went back refills nothing)."""
    if tokens is None or updated_at is None:
        return float(bucket.burst)
    elapsed = max(0.0, (now - updated_at).total_seconds())
    return min(float(bucket.burst), tokens + elapsed * bucket.rate_per_second)


def _value(c: sqlite3.Connection, tenant_id: str, charge: Charge) -> int:
    row = c.execute(
        "SELECT value FROM usage_counters WHERE tenant_id = ? AND counter = ? AND period = ?",
        (tenant_id, charge.counter, charge.period),
    ).fetchone()
    return int(row["value"]) if row else 0


def _add(c: sqlite3.Connection, tenant_id: str | None, counter: str, period: str, amount: int) -> None:
    """Add to a counter (never below zero); a counter back at zero has no row, so a charge given
    back leaves the table as it was."""
    if tenant_id is None or amount == 0:
        return
    key = (tenant_id, counter, period)
    row = c.execute(
        "SELECT value FROM usage_counters WHERE tenant_id = ? AND counter = ? AND period = ?", key
    ).fetchone()
    value = max(0, (int(row["value"]) if row else 0) + amount)
    if row is None and value > 0:
        c.execute("INSERT INTO usage_counters (tenant_id, counter, period, value) VALUES (?, ?, ?, ?)", (*key, value))
    elif row is not None and value > 0:
        c.execute(
            "UPDATE usage_counters SET value = ? WHERE tenant_id = ? AND counter = ? AND period = ?", (value, *key)
        )
    elif row is not None:
        c.execute("DELETE FROM usage_counters WHERE tenant_id = ? AND counter = ? AND period = ?", key)


def _release(c: sqlite3.Connection, tenant_id: str | None, stored_bytes: int) -> None:
    _add(c, tenant_id, STORAGE_COUNTER, "", -stored_bytes)
