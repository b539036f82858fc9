"""Alembic's environment for the provider's database.

The provider runs migrations itself when it opens its Store (`provider_server.store.migrate`), handing
over a connection that already holds the migration lock and an open transaction: every revision of
one upgrade commits together or not at all, on SQLite as on PostgreSQL. Run by hand instead
(`alembic -c <an ini naming this directory and sqlalchemy.url> upgrade head`), it opens its own.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from provider_server.store import engine as engines
from provider_server.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = engines.create(engines.normalise_url(url))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
