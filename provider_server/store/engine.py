"""SQLAlchemy engines for the Store's two databases, and what their errors mean to a request.

SQLite: one connection for the whole process (a StaticPool; `transactions.py` guards it with a lock),
WAL so readers never wait for a writer, and the driver's own implicit BEGIN switched off: transactions
begin by hand, SQLAlchemy's (the migrations') with `BEGIN IMMEDIATE`, so DDL runs inside them and
holds the database's write lock from the start.

PostgreSQL (psycopg 3): a pool of connections shared by the threads. psycopg prepares a statement on
the server after it ran a few times on a connection, so the classify path pays for neither parsing nor
planning once warm.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from ..errors import StorageFull
from .base import RecordExistsError

#: How long a SQLite writer waits for another process's write lock before it gives up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: PostgreSQL's SQLSTATE for a full disk, and for a duplicate key.
PG_DISK_FULL = "53100"
PG_UNIQUE_VIOLATION = "23505"


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for a database URL the provider accepts, or ValueError: `sqlite:///<path>`,
    `postgresql://...` (psycopg 3 is the driver; `postgresql+psycopg://` says so explicitly)."""
    if url.startswith("sqlite:///"):
        return url
    for prefix in ("postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(
        f"unsupported database URL {_masked(url)!r}: use sqlite:///<path> or postgresql://user@host[:port]/database"
    )


def _masked(url: str) -> str:
    """The URL without its password (error messages end up in logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def create(url: str) -> Engine:
    """The engine for a URL `normalise_url` accepted; a SQLite file is created private (0600)."""
    if url.startswith("sqlite:///"):
        return _sqlite_engine(Path(url[len("sqlite:///") :]))
    return create_engine(url, pool_size=8, max_overflow=32)


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Private from its first byte: SQLite gives the -wal and -shm files the database's mode.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    engine = create_engine(
        f"sqlite:///{path}",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say when a transaction begins
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception (SQLAlchemy wraps it when it ran the statement)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def is_duplicate(exc: BaseException) -> bool:
    """Whether an integrity error says a record with this key (id, or unique name) is already stored."""
    orig = _driver_error(exc)
    if isinstance(orig, sqlite3.IntegrityError):
        return True
    return getattr(orig, "sqlstate", None) == PG_UNIQUE_VIOLATION


def _is_disk_full(exc: BaseException) -> bool:
    orig = _driver_error(exc)
    if isinstance(orig, sqlite3.OperationalError):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(orig, "sqlstate", None) == PG_DISK_FULL


@contextmanager
def storage_errors() -> Iterator[None]:
    """A full disk under either database is a 507 (`StorageFull`); the transaction it hit is rolled
    back by the time this raises, so nothing of the request was stored."""
    try:
        yield
    except Exception as exc:
        if not _is_disk_full(exc):
            raise
        raise StorageFull("storage_full", "the provider's storage is full (database); nothing was stored") from None


def duplicate_as_exists(table: str, exc: BaseException) -> RecordExistsError:
    return RecordExistsError(f"{table}: {_driver_error(exc)}")
