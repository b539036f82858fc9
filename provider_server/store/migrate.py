"""Bring a database to the current schema when the Store opens it, with Alembic.

Every provider runs this at start-up, and replicas start together, so the whole upgrade is one
transaction under a lock that a second process waits for: on SQLite the database's write lock
(`BEGIN IMMEDIATE`), on PostgreSQL a transaction-level advisory lock. Whoever comes second finds the
schema current and changes nothing.

A SQLite database made before Alembic (tables, no `alembic_version`) is first brought to the last
legacy version with the legacy steps, in the same transaction, and stamped with revision 0001, which
is that schema; later revisions then apply as to any database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from . import legacy

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The Alembic revision whose schema is the legacy SQLite schema version 6.
LEGACY_REVISION = "0001"
#: pg_advisory_xact_lock key held while migrating ("helix" "schema" in ASCII, as a bigint).
MIGRATION_LOCK = 0x68656C6978_736368


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the provider's migrations, without an alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine) -> None:
    """Migrate to the newest revision (or do nothing if the database is there), atomically."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        else:
            raw = conn.connection.driver_connection
            if legacy.is_legacy(raw):  # type: ignore[arg-type]
                legacy.migrate(raw)  # type: ignore[arg-type]
                command.stamp(config(conn), LEGACY_REVISION)
        try:
            command.upgrade(config(conn), "head")
        except CommandError as exc:
            raise RuntimeError(f"cannot migrate the provider's database (is it from a newer release?): {exc}") from exc


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
