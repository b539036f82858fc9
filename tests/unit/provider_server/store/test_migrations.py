"""The provider's database schema under Alembic, on SQLite and PostgreSQL: migrations make exactly the
tables the Store's queries are written against, replicas starting together do not race them, and the
audit log is append-only in the database itself."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from provider_server.errors import StorageFull
from provider_server.store import AuditRecord, open_store
from provider_server.store import engine as engines
from provider_server.store.legacy import MIGRATIONS
from provider_server.store.migrate import head_revision
from provider_server.store.schema import metadata
from tests.unit.provider_server.store.store_processes import run_together


@pytest.fixture(params=("sqlite", "postgresql"))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'provider.db'}"


def schema_differences(url: str, compare_type: bool = True) -> list[object]:
    engine = create_engine(engines.normalise_url(url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": compare_type})
            assert ctx.get_current_revision() == head_revision()
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_a_migrated_database_has_exactly_the_schema_of_the_queries(url: str) -> None:
    """schema.py and the revisions agree (a change to one without the other fails here)."""
    open_store(url).close()
    assert schema_differences(url) == []


def test_a_legacy_database_ends_with_the_same_tables(tmp_path: Path) -> None:
    """A SQLite database from before Alembic, brought to version 6 and stamped, has every table,
    column and index a fresh one has. Known and harmless: its declared types are the legacy ones
    (SQLite ignores them), it keeps its legacy version table, and its TEXT PRIMARY KEY columns are
    nullable by a SQLite quirk (the Store never writes a NULL id)."""
    path = tmp_path / "provider.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:3]:
        for sql in step.statements:
            conn.execute(sql)
    conn.close()
    url = f"sqlite:///{path}"
    open_store(url).close()
    primary = {(t.name, c.name) for t in metadata.tables.values() for c in t.primary_key.columns}
    remaining = []
    for diff in schema_differences(url, compare_type=False):
        if isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "schema_version":
            continue
        if isinstance(diff, list) and diff[0][0] == "modify_nullable" and (diff[0][2], diff[0][3]) in primary:
            continue
        remaining.append(diff)
    assert remaining == []


def test_replicas_opening_a_new_database_together_migrate_it_once(url: str) -> None:
    assert run_together(4, url, "open") == ["opened"] * 4
    engine = create_engine(engines.normalise_url(url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
    finally:
        engine.dispose()
    assert schema_differences(url) == []


def test_replicas_opening_a_legacy_database_together_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:2]:
        for sql in step.statements:
            conn.execute(sql)
    conn.close()
    assert run_together(4, f"sqlite:///{path}", "open") == ["opened"] * 4
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(6,)]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    finally:
        conn.close()


def test_postgresql_refuses_to_change_the_audit_log(pg_url: str) -> None:
    """Append-only below the Store too: an operator's UPDATE, DELETE or TRUNCATE is refused."""
    store = open_store(pg_url)
    try:
        store.append_audit(AuditRecord(tenant_id="t_1", action="classify", at=datetime(2026, 1, 1, tzinfo=UTC)))
    finally:
        store.close()
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in ("UPDATE audit_log SET count = 0", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT action, count FROM audit_log").fetchall() == [("classify", 1)]


def test_a_full_postgresql_disk_is_storage_full() -> None:
    """PostgreSQL's disk_full (SQLSTATE 53100) maps as SQLite's SQLITE_FULL does; other errors pass."""
    full = OperationalError("INSERT ...", {}, psycopg.errors.DiskFull("could not extend file"))
    with pytest.raises(StorageFull) as info, engines.storage_errors():
        raise full
    assert (info.value.status, info.value.code) == (507, "storage_full")
    other = OperationalError("INSERT ...", {}, psycopg.errors.QueryCanceled("canceling statement"))
    with pytest.raises(OperationalError), engines.storage_errors():
        raise other
    duplicate = IntegrityError("INSERT ...", {}, psycopg.errors.UniqueViolation("duplicate key"))
    foreign = IntegrityError("INSERT ...", {}, psycopg.errors.ForeignKeyViolation("no such tenant"))
    assert engines.is_duplicate(duplicate) and not engines.is_duplicate(foreign)
