"""What only the PostgreSQL Store has to handle: a server that drops its connections (a restart, a
failover, an administrator's pg_terminate_backend) costs at most the call that was using one."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from provider_server.store import TenantRecord, open_store
from provider_server.store.transactions import ConnectionLost


def drop_connections(pg_url: str) -> int:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_reads_survive_dropped_connections_and_writes_fail_once(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        now = datetime(2026, 3, 1, tzinfo=UTC)
        store.add_tenant(TenantRecord("t_1", "acme", now))
        assert store.get_tenant("t_1") is not None
        assert drop_connections(pg_url) >= 1
        assert store.get_tenant("t_1") is not None, "a read is tried again on a new connection"
        assert drop_connections(pg_url) >= 1
        with pytest.raises(ConnectionLost):  # a write is not repeated: it may have committed
            store.add_tenant(TenantRecord("t_2", "beta", now))
        store.add_tenant(TenantRecord("t_2", "beta", now))
        assert [t.tenant_id for t in store.list_tenants()] == ["t_1", "t_2"]
    finally:
        store.close()
