"""The provider's SQLite databases from before Alembic: those created before the schema version table,
and those with one, still open, migrate to the last legacy version (Alembic's revision 0001), continue
with Alembic and read as before."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from provider_server.store import AuditRecord, SessionRecord, Store, open_store
from provider_server.store import engine as engines
from provider_server.store.legacy import MIGRATIONS, SCHEMA_VERSION
from provider_server.store.migrate import head_revision, upgrade
from shared_protocol.messages import AlignmentState, KeyPurpose, OutputMode


def unversioned_database(path: Path, version: int) -> sqlite3.Connection:
    """A database as releases before the version table left it: the schema after `version`
    migrations, no schema_version table."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:version]:
        for sql in step.statements:
            conn.execute(sql)
    return conn


def SqliteStore(path: Path) -> Store:  # noqa: N802  (reads as the class it stands for)
    return open_store(f"sqlite:///{path}")


def schema_version(path: Path) -> int:
    """The legacy version, after checking that Alembic has taken over at its newest revision."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
    finally:
        conn.close()


def alembic_revision(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def test_sessions_from_before_validation_folds_read_as_without_folds(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    conn = unversioned_database(path, 2)  # the schema as it was before the column
    conn.execute(
        "INSERT INTO sessions (session_id, head_id, corpus_id, key_id, parameter_set, state, num_samples, "
        "feature_dim, samples_per_ciphertext, num_ciphertexts, received, computed_columns, output_columns, "
        "created_at, expires_at, include_head_texts, client_model_id) VALUES ('a_old', 'h', 'c', 'k', "
        "'ckks-n8192-q200', 'done', 10, 4, 2, 5, '[]', 4, 4, '2026-01-01T00:00:00+00:00', "
        "'2026-01-02T00:00:00+00:00', 0, 'm')"
    )
    conn.close()
    store = SqliteStore(path)
    try:
        old = store.get_session("a_old")
        assert old is not None and old.validation_folds == 0 and old.state == AlignmentState.done
        assert old.created_at == datetime(2026, 1, 1, tzinfo=UTC)
        new = replace(old, session_id="a_new", validation_folds=5, state=AlignmentState.receiving)
        store.add_session(new)
        assert store.get_session("a_new") == new
    finally:
        store.close()
    assert schema_version(path) == SCHEMA_VERSION


def test_keys_from_before_galois_keys_read_as_without_them(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    conn = unversioned_database(path, 1)
    conn.execute(
        "INSERT INTO keys (key_id, client_name, purpose, parameter_set, fingerprint, created_at, expires_at, "
        "public_key_blob) VALUES ('k_old', 'c', 'inference', 'ckks-n8192-q200', 'f', "
        "'2026-01-01T00:00:00+00:00', '2026-01-02T00:00:00+00:00', 'pk')"
    )
    conn.close()
    store = SqliteStore(path)
    try:
        key = store.get_key("k_old")
        assert key is not None and key.purpose == KeyPurpose.inference and not key.revoked
        assert key.galois_keys_blob is None and key.galois_elements == ()
        assert key.expires_at - key.created_at == timedelta(days=1)
    finally:
        store.close()
    assert schema_version(path) == SCHEMA_VERSION


def test_heads_from_before_output_modes_answer_logits(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    conn = unversioned_database(path, 4)  # the schema at version 4, with a head in it
    conn.execute(
        "INSERT INTO heads (id, name, task, class_names, dim, num_classes, created_at, weights_blob, bias_blob, "
        "texts, texts_embeddings_blob, encoder_model_id, report) VALUES ('old', 'old', 'sentiment', "
        "'[\"neg\", \"pos\"]', 384, 2, '2026-01-01T00:00:00+00:00', 'w', 'b', '[]', NULL, 'minilm', "
        '\'{"train_examples": 10, "train_accuracy": 0.9}\')'
    )
    conn.close()
    store = SqliteStore(path)
    try:
        old = store.get_head("old")
        assert old is not None and old.output_mode == OutputMode.logits and old.class_names == ("neg", "pos")
        store.add_head(replace(old, id="new", name="new", output_mode=OutputMode.ranking))
        new = store.get_head("new")
        assert new is not None and new.output_mode == OutputMode.ranking
    finally:
        store.close()
    assert schema_version(path) == SCHEMA_VERSION == 6


def test_current_unversioned_database_is_adopted_without_changes(tmp_path: Path) -> None:
    """A database from the last release before the version table has every column: it only gets
    the version recorded, and opening it again changes nothing."""
    path = tmp_path / "provider.db"
    unversioned_database(path, SCHEMA_VERSION).close()
    for _ in range(2):
        SqliteStore(path).close()
        assert schema_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
        folds = [r for r in conn.execute("PRAGMA table_info(sessions)") if r[1] == "validation_folds"]
        assert len(folds) == 1
    finally:
        conn.close()


def _session() -> SessionRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return SessionRecord(
        session_id="a_1",
        head_id="h",
        corpus_id="c",
        key_id="k",
        parameter_set="ckks-n8192-q200",
        state=AlignmentState.receiving,
        num_samples=10,
        feature_dim=4,
        samples_per_ciphertext=2,
        num_ciphertexts=5,
        received=(),
        computed_columns=0,
        output_columns=4,
        error=None,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        include_head_texts=False,
        client_model_id="m",
        data_scale_bits=None,
        result_blob=None,
    )


def test_a_fresh_database_runs_every_migration(tmp_path: Path) -> None:
    """A new database is Alembic's from the start: every revision, no legacy version table."""
    path = tmp_path / "sub" / "provider.db"
    store = SqliteStore(path)
    try:
        store.add_session(_session())
        assert store.get_session("a_1") == _session()
    finally:
        store.close()
    assert alembic_revision(path) == head_revision()
    conn = sqlite3.connect(path)
    try:
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchall()
    finally:
        conn.close()


def test_rows_from_before_tenants_belong_to_no_tenant(tmp_path: Path) -> None:
    """Migration 6 adds owners; a key, challenge or session stored before it has none, so no
    tenant's lookup reaches it (services compare owners, and a challenge is taken per tenant)."""
    path = tmp_path / "provider.db"
    conn = unversioned_database(path, 5)
    conn.execute(
        "INSERT INTO challenges (challenge_id, seed, created_at, expires_at) VALUES ('c_old', '00', "
        "'2026-01-01T00:00:00+00:00', '2099-01-01T00:00:00+00:00')"
    )
    conn.close()
    store = SqliteStore(path)
    try:
        store.add_session(_session())
        old = store.get_session("a_1")
        assert old is not None and old.tenant_id is None and old.stored_bytes == 0
        assert store.take_challenge("c_old", "t_any") is None
    finally:
        store.close()
    assert schema_version(path) == 6


def test_the_database_refuses_to_change_the_audit_log(tmp_path: Path) -> None:
    """Append-only below the Store too: an operator's UPDATE or DELETE on the table is refused."""
    path = tmp_path / "provider.db"
    store = SqliteStore(path)
    try:
        store.append_audit(AuditRecord(tenant_id="t_1", action="classify", at=datetime(2026, 1, 1, tzinfo=UTC)))
    finally:
        store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for sql in ("UPDATE audit_log SET count = 0", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT action, count FROM audit_log").fetchall() == [("classify", 1)]
    finally:
        conn.close()


def test_a_database_another_process_migrated_meanwhile_is_not_migrated_again(tmp_path: Path) -> None:
    """Two replicas start on one legacy database: just before the first one's migration transaction
    begins, the other migrates it all the way (legacy steps, stamp, revisions). The first reads the
    schema inside its own write transaction, so it finds it current and changes nothing."""
    path = tmp_path / "shared.db"
    unversioned_database(path, 3).close()
    url = f"sqlite:///{path}"
    first = engines.create(url)
    statements: list[str] = []

    @event.listens_for(first, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        def before(sql: str) -> None:
            statements.append(sql)
            if sql.startswith("BEGIN IMMEDIATE") and sum(s.startswith("BEGIN") for s in statements) == 1:
                open_store(url).close()  # the other replica, all the way

        dbapi_connection.set_trace_callback(before)

    try:
        upgrade(first)
    finally:
        first.dispose()
    assert any(s.startswith("BEGIN IMMEDIATE") for s in statements), "the race was not staged"
    writes = ("CREATE", "ALTER", "INSERT", "UPDATE", "DELETE", "DROP")
    assert [s for s in statements if s.lstrip().upper().startswith(writes)] == []
    assert schema_version(path) == SCHEMA_VERSION
