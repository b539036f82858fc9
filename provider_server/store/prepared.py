"""Core statements compiled once per database, then run straight on the driver's cursor.

Why: the Store sits on the classify path (six calls per request), and a statement executed through a
SQLAlchemy Connection costs tens of microseconds of Python before and after the driver's own few:
on SQLite that was several times the query itself. So each statement is compiled once for the
Store's dialect (SQL text, parameter order, the column types' bind and result conversions, the
constants it carries), and a call only fills in parameters, runs the SQL and converts the row. The
statements, types and dialects are still SQLAlchemy's; only the per-call machinery is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


class Prepared:
    """One statement for one dialect: `params(values)` for the driver, `row(values)` from it."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        keys = list(column_keys) if column_keys is not None else None
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        assert isinstance(compiled, SQLCompiler)
        assert "POSTCOMPILE" not in compiled.string, "an expanding IN cannot be prepared once"
        self.sql: str = compiled.string
        self._binds: list[tuple[str, Any, Processor]] = [
            (name, bind.effective_value, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in compiled.binds.items()
        ]
        positions = compiled.positiontup
        self._positions: list[str] | None = list(positions) if dialect.positional and positions else None
        columns = getattr(stmt, "selected_columns", None) or getattr(stmt, "exported_columns", None) or []
        self.columns: list[str] = [c.key for c in columns]
        self._types = [c.type.dialect_impl(dialect) for c in columns]
        self._dialect = dialect
        self._results: list[Processor] | None = None  # known from the first result's column types

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters: a tuple for a positional driver (SQLite), else a dict (psycopg)."""
        out: dict[str, Any] = {}
        for name, default, process in self._binds:
            value = values.get(name, default)
            out[name] = process(value) if process is not None and value is not None else value
        if self._positions is not None:
            return tuple(out[name] for name in self._positions)
        return out

    def row(self, values: Sequence[Any], description: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """A result row as {column key: value}, converted by the columns' types (which may depend on the
        database's own type of each column, as the cursor describes it)."""
        results = self._results
        if results is None:
            codes = [d[1] for d in description]
            results = [t.result_processor(self._dialect, code) for t, code in zip(self._types, codes, strict=True)]
            self._results = results
        return {
            key: process(v) if process is not None and v is not None else v
            for key, process, v in zip(self.columns, results, values, strict=True)
        }
