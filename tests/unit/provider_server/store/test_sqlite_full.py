"""A full disk under the provider's database is a 507 (`StorageFull`) with the write rolled back."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provider_server.errors import StorageFull
from provider_server.store import ChallengeRecord, open_store
from provider_server.store.sql import SqlStore


def challenge() -> ChallengeRecord:
    now = datetime.now(UTC)
    return ChallengeRecord("c_" + secrets.token_hex(12), secrets.token_bytes(32), now, now + timedelta(minutes=1))


def test_a_full_database_is_storage_full_and_rolled_back(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'provider.db'}")
    assert isinstance(store, SqlStore)
    # The Store's one SQLite connection (a StaticPool hands out the same one every time).
    conn = store._engine.raw_connection().driver_connection
    assert isinstance(conn, sqlite3.Connection)
    try:
        kept = challenge()
        store.add_challenge(kept)
        # SQLite's own page limit answers SQLITE_FULL exactly as a full disk does, without filling one.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageFull) as info:
            for _ in range(10000):
                store.add_challenge(challenge())
        assert (info.value.status, info.value.code) == (507, "storage_full")
        assert "storage is full" in info.value.detail
        assert not conn.in_transaction
        conn.execute("PRAGMA max_page_count = 1073741823")
        store.add_challenge(challenge())  # usable again once there is room
    finally:
        store.close()
