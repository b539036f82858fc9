"""The SQLite schema before Alembic: six ordered migrations and their own `schema_version` table.

Databases made by releases before Alembic carry this table (or, older still, none: their version is
read off their columns). Opening one brings it to version 6 with exactly the steps those releases
ran, after which Alembic takes over: version 6 is Alembic's revision 0001 (see `migrate.py`). Nothing
new is ever added here; later schema changes are Alembic revisions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


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
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def _unversioned_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database without a version table: 0 if it is empty, else read off
    the columns the releases before the version table had added (their last, if every one is there;
    a database with every later column too, which only a test builds, reads as the latest).
    Runs once per such database; afterwards the version table says."""
    if not _columns(conn, "heads"):
        return 0
    if _columns(conn, "tenants"):
        return 6
    if "output_mode" in _columns(conn, "heads"):
        return 5
    if _columns(conn, "challenges"):
        return 4
    if "validation_folds" in _columns(conn, "sessions"):
        return 3
    return 2 if "galois_elements" in _columns(conn, "keys") else 1


def is_legacy(conn: sqlite3.Connection) -> bool:
    """Whether the database was made before Alembic (it has tables, but no Alembic version table)."""
    return bool(_columns(conn, "heads")) and not _columns(conn, "alembic_version")


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a legacy database to SCHEMA_VERSION inside the caller's write transaction (so a second
    process opening it at the same time waits, then finds it done); returns the version before."""
    if not _columns(conn, "schema_version"):
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (_unversioned_version(conn),))
    (start,) = conn.execute("SELECT version FROM schema_version").fetchone()
    if start > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {start}; this provider knows up to {SCHEMA_VERSION}")
    for step in MIGRATIONS:
        if step.version <= start:
            continue
        for sql in step.statements:
            conn.execute(sql)
        conn.execute("UPDATE schema_version SET version = ?", (step.version,))
    return int(start)
