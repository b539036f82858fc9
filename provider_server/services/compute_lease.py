"""The lease a replica holds on an alignment computation, kept alive by a heartbeat.

Several provider replicas share one database and data directory, and any of them may be asked to
compute a session. The replica that claims it holds it for `compute_lease_seconds`, and renews the
lease every third of that while the computation runs. If the replica dies (SIGKILL, a lost host),
the lease runs out: the session is then reported as interrupted, and the client's next
POST .../compute runs it again on whichever live replica it reaches. A replica that finds its lease
taken (it stalled for longer than the lease) stops computing: the session is someone else's now.

Why a lease and not "fail everything computing at start-up": with one process, a restart proved that
nothing computed any more; with replicas, a restarting replica must leave the others' live
computations alone, and a replica that never comes back must not hold its sessions for ever. The
lease compares wall clocks of different replicas, so their clocks must agree to well within it
(NTP; on one host they are the same clock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from ..clock import utcnow
from ..store import SessionRecord, Store

log = logging.getLogger("helix.provider.alignment")

T = TypeVar("T")

#: Heartbeats per lease: two may be missed (a slow database, a busy event loop) before it runs out.
BEATS_PER_LEASE = 3


class LeaseLost(Exception):
    """Another replica claimed the computation after this replica's lease ran out."""


def lease_expired(session: SessionRecord, now: datetime) -> bool:
    """A computing session whose replica stopped renewing its lease (it died, or stalled)."""
    return session.lease_expires_at is not None and session.lease_expires_at < now


class ComputeLease:
    def __init__(self, store: Store, session_id: str, owner: str, seconds: float) -> None:
        self._store = store
        self.session_id = session_id
        self.owner = owner
        self.seconds = seconds

    def until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)

    def claim(self) -> bool:
        """Take the computation (a fresh one, or one whose lease expired); False if a live replica
        holds it or it is done."""
        now = utcnow()
        return self._store.claim_for_compute(self.session_id, self.owner, self.until(now), now)

    async def hold(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` while renewing the lease; LeaseLost (and `work` cancelled) if it was taken."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.seconds / BEATS_PER_LEASE)
                if done:
                    return task.result()
                if not await self._renew():
                    raise LeaseLost(self.session_id)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _renew(self) -> bool:
        """True if the lease was renewed or could not be renewed just now (a database hiccup: the next
        beat tries again); False only if the store says this replica holds the computation no more."""
        try:
            return await run_in_threadpool(self._store.renew_lease, self.session_id, self.owner, self.until(utcnow()))
        except Exception:
            log.warning("renewing an alignment computation's lease failed; trying again", exc_info=True)
            return True
