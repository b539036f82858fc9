"""The lease a replica holds on an alignment computation: its heartbeat keeps it, losing it stops the
work, and a lapsed lease reads as expired (a real SQLite store; no clocks are faked)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provider_server.clock import utcnow
from provider_server.services.compute_lease import ComputeLease, LeaseLost, lease_expired
from provider_server.store import SessionRecord, Store, open_store
from shared_protocol.messages import AlignmentState


def _session(sid: str = "a_1") -> SessionRecord:
    now = utcnow()
    return SessionRecord(
        session_id=sid,
        head_id="sst2",
        corpus_id="wiki",
        key_id="k_1",
        parameter_set="ckks-n8192-q200",
        state=AlignmentState.receiving,
        num_samples=600,
        feature_dim=64,
        samples_per_ciphertext=64,
        num_ciphertexts=10,
        received=tuple(range(10)),
        computed_columns=0,
        output_columns=384,
        error=None,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        include_head_texts=False,
        client_model_id="m",
        data_scale_bits=25,
        result_blob=None,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'provider.db'}")
    s.add_session(_session())
    return s


def test_the_heartbeat_keeps_the_lease_while_the_work_runs(store: Store) -> None:
    lease = ComputeLease(store, "a_1", "r1", seconds=1.0)
    assert lease.claim()
    first = store.get_session("a_1")
    assert first is not None and first.lease_expires_at is not None

    async def work() -> str:
        await asyncio.sleep(1.5)  # the work being held: longer than the lease itself
        return "result"

    assert asyncio.run(lease.hold(work())) == "result"
    renewed = store.get_session("a_1")
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > first.lease_expires_at, "no heartbeat renewed the lease"
    assert not ComputeLease(store, "a_1", "r2", seconds=1.0).claim(), "a held computation was claimed again"


def test_a_lost_lease_stops_the_work(store: Store) -> None:
    lease = ComputeLease(store, "a_1", "r1", seconds=0.6)
    assert lease.claim()
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def scenario() -> None:
        held = asyncio.ensure_future(lease.hold(work()))
        later = utcnow() + timedelta(seconds=5)  # as a replica would see it once r1's lease has run out
        assert store.claim_for_compute("a_1", "r2", later + timedelta(seconds=30), later)
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(held, 10)
        assert cancelled.is_set()

    asyncio.run(scenario())
    taken = store.get_session("a_1")
    assert taken is not None and taken.compute_owner == "r2" and taken.state == AlignmentState.computing


def test_only_a_lapsed_lease_is_expired() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    session = _session()
    assert not lease_expired(session, now), "a session without a lease"
    held = replace(session, lease_expires_at=now + timedelta(seconds=1))
    assert not lease_expired(held, now)
    assert lease_expired(held, now + timedelta(seconds=2))
