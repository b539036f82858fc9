"""Transactions on the driver's connections, for the Store's prepared statements.

SQLite: one connection for the process (requests run in a thread pool and SQLite serialises writers
anyway), guarded by a lock; a write begins with `BEGIN IMMEDIATE`, so it holds the database's write
lock from its first read and two processes never both read-then-write; a read runs alone, in no
transaction (WAL: it never waits for a writer). PostgreSQL: a connection from the engine's pool per
call; a read in autocommit (one round trip), a write in one READ COMMITTED transaction. A connection
that broke (the server restarted, say) is dropped from the pool rather than handed out again, and a
read that met one is tried once more on a fresh connection (a write is not: it may have committed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

from .engine import storage_errors
from .prepared import Prepared

T = TypeVar("T")


class Tx:
    """Statements run on one connection (inside a transaction for writes)."""

    def __init__(self, cursor: Any, prepared: Mapping[int, Prepared]) -> None:
        self._cursor = cursor
        self._prepared = prepared

    def _run(self, stmt: ClauseElement, params: Mapping[str, Any]) -> Prepared:
        p = self._prepared.get(id(stmt))
        if p is None:  # a statement built outside sql.py's module-level list
            raise LookupError(f"statement not prepared for this Store: {stmt}")
        self._cursor.execute(p.sql, p.params(params))
        return p

    def first(self, stmt: ClauseElement, params: Mapping[str, Any]) -> dict[str, Any] | None:
        p = self._run(stmt, params)
        row = self._cursor.fetchone()
        return p.row(row, self._cursor.description) if row is not None else None

    def all(self, stmt: ClauseElement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        p = self._run(stmt, params)
        return [p.row(r, self._cursor.description) for r in self._cursor.fetchall()]

    def scalar(self, stmt: ClauseElement, params: Mapping[str, Any]) -> Any:
        row = self.first(stmt, params)
        return next(iter(row.values())) if row is not None else None

    def change(self, stmt: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run an INSERT, UPDATE or DELETE; how many rows it touched."""
        self._run(stmt, params)
        return int(self._cursor.rowcount)


class Database:
    """Read and write transactions on the engine's database, with statements prepared per dialect."""

    def __init__(self, engine: Engine, statements: list[tuple[ClauseElement, list[str] | None]]) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self._prepared = {id(stmt): Prepared(stmt, engine.dialect, keys) for stmt, keys in statements}
        self._lock = threading.RLock()
        self._sqlite: Any = None
        if not self.postgresql:
            self._proxy = engine.raw_connection()  # the one connection (a StaticPool holds no other)
            self._sqlite = self._proxy.driver_connection

    def close(self) -> None:
        with self._lock:
            if self._sqlite is not None:
                self._proxy.close()
                self._sqlite = None
            self.engine.dispose()

    def reading(self, fn: Callable[[Tx], T]) -> T:
        """`fn` in a read; on PostgreSQL once more if the pooled connection it got had broken."""
        try:
            with self.read() as tx:
                return fn(tx)
        except Exception as exc:
            if not (self.postgresql and isinstance(exc, ConnectionLost)):
                raise
        with self.read() as tx:
            return fn(tx)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        if self._sqlite is not None:
            with self._lock, storage_errors():
                yield Tx(self._sqlite.cursor(), self._prepared)
            return
        with self._pg(autocommit=True) as conn:
            yield Tx(conn.cursor(), self._prepared)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction: committed if the block returns, rolled back if it raises; a full disk
        answers 507 (`StorageFull`) with nothing stored."""
        if self._sqlite is not None:
            conn = self._sqlite
            with self._lock, storage_errors():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(conn.cursor(), self._prepared)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            return
        with self._pg(autocommit=False) as conn:
            try:
                yield Tx(conn.cursor(), self._prepared)
                conn.commit()
            except BaseException:
                if not conn.broken:
                    conn.rollback()
                raise

    @contextmanager
    def _pg(self, autocommit: bool) -> Iterator[Any]:
        proxy = self.engine.raw_connection()
        conn = proxy.driver_connection
        assert conn is not None
        try:
            with storage_errors():
                if conn.autocommit != autocommit:
                    conn.autocommit = autocommit
                yield conn
        except Exception as exc:
            if conn.broken or conn.closed:
                # The others idle in the pool are as old: most likely the server restarted.
                proxy.invalidate()
                self.engine.dispose()
                raise ConnectionLost(f"the connection to PostgreSQL broke: {exc}") from exc
            raise
        finally:
            proxy.close()


class ConnectionLost(Exception):
    """A PostgreSQL connection broke under a statement (its cause is the driver's error); the pool was
    emptied, so the next call connects anew."""
