"""Budgets and rate limits per tenant: check and charge in one Store transaction, refuse with 429.

What each limit defends (docs/security.md has the whole argument):
- queries per day per head bounds how much of a head one tenant can learn (its extraction budget);
  a batch of m queries counts m;
- alignment sessions per day bound how many chosen linear functionals of the provider's embeddings
  one tenant obtains;
- storage bounds the disk one tenant can fill with keys, chunks and results;
- a token bucket on classify and on creations (challenges, keys, sessions) bounds the CPU and the
  request rate one tenant can take from the others.

A refused request charges nothing (the Store checks every limit before it changes any counter); a
request admitted and then failing (an invalid ciphertext, say) gets its counts back, but not its
token: the bucket limits attempts. Daily counters use the UTC day and restart at UTC midnight."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import utcnow
from ..errors import TooManyRequests
from ..settings import ProviderSettings
from ..store import Bucket, Charge, Refusal, Store, TenantRecord

STORAGE = "storage"
ALIGNMENTS = "alignments"
QUERIES = "queries:"
CLASSIFY_BUCKET = "classify"
CREATE_BUCKET = "create"
#: What a refused storage request is told to wait: storage frees only when the tenant deletes sessions
#: or revokes keys, so this is a polite retry interval, not a promise.
STORAGE_RETRY_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    """A tenant's limits in force: its overrides over the provider's defaults."""

    queries_per_day: int
    alignments_per_day: int
    storage_bytes: int
    rate_per_second: float
    rate_burst: int

    def bucket(self, name: str) -> Bucket:
        return Bucket(name, self.rate_per_second, self.rate_burst)


@dataclass(frozen=True)
class Admission:
    """What an admitted request was charged, to give back if it fails later."""

    tenant_id: str
    charges: tuple[Charge, ...]


def day_of(now: datetime) -> str:
    return now.date().isoformat()


def next_day(now: datetime) -> datetime:
    """The next UTC midnight after `now`: when daily counters restart."""
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)


class Metering:
    def __init__(self, store: Store, settings: ProviderSettings) -> None:
        self._store = store
        self._settings = settings

    def limits(self, tenant: TenantRecord) -> Limits:
        s, q = self._settings, tenant.quotas
        return Limits(
            queries_per_day=s.tenant_queries_per_day if q.queries_per_day is None else q.queries_per_day,
            alignments_per_day=s.tenant_alignments_per_day if q.alignments_per_day is None else q.alignments_per_day,
            storage_bytes=s.tenant_storage_bytes if q.storage_bytes is None else q.storage_bytes,
            rate_per_second=s.tenant_rate_per_second if q.rate_per_second is None else q.rate_per_second,
            rate_burst=s.tenant_rate_burst if q.rate_burst is None else q.rate_burst,
        )

    def admit_classify(self, tenant: TenantRecord, head_id: str, queries: int) -> Admission:
        """One classify request of `queries` queries of head `head_id`."""
        limits, now = self.limits(tenant), utcnow()
        charge = Charge(QUERIES + head_id, day_of(now), queries, limits.queries_per_day)
        return self._admit(tenant, (charge,), limits.bucket(CLASSIFY_BUCKET), now)

    def admit_creation(self, tenant: TenantRecord, *, storage_bytes: int = 0, alignment: bool = False) -> Admission:
        """A challenge, a key (its bytes) or an alignment session (one of the day's sessions)."""
        limits, now = self.limits(tenant), utcnow()
        charges: list[Charge] = []
        if storage_bytes:
            charges.append(Charge(STORAGE, "", storage_bytes, limits.storage_bytes))
        if alignment:
            charges.append(Charge(ALIGNMENTS, day_of(now), 1, limits.alignments_per_day))
        return self._admit(tenant, tuple(charges), limits.bucket(CREATE_BUCKET), now)

    def admit_storage(self, tenant: TenantRecord, storage_bytes: int) -> Admission:
        """Uploaded ciphertexts: storage only (a session's chunks are not requests of their own to limit)."""
        limits, now = self.limits(tenant), utcnow()
        return self._admit(tenant, (Charge(STORAGE, "", storage_bytes, limits.storage_bytes),), None, now)

    def refund(self, admission: Admission) -> None:
        if admission.charges:
            self._store.refund(admission.tenant_id, admission.charges)

    def _admit(
        self, tenant: TenantRecord, charges: Sequence[Charge], bucket: Bucket | None, now: datetime
    ) -> Admission:
        charges = tuple(c for c in charges if c.amount > 0)
        refusal = self._store.admit(tenant.tenant_id, charges, bucket, now)
        if refusal is not None:
            raise _too_many(refusal, charges, now)
        return Admission(tenant.tenant_id, charges)


def _too_many(refusal: Refusal, charges: Sequence[Charge], now: datetime) -> TooManyRequests:
    until_tomorrow = math.ceil((next_day(now) - now).total_seconds())
    limit = next((c.limit for c in charges if c.counter == refusal.name), None)
    if refusal.name in (CLASSIFY_BUCKET, CREATE_BUCKET):
        wait = math.ceil(refusal.wait_seconds or 1.0)
        what = "classify requests" if refusal.name == CLASSIFY_BUCKET else "creations of challenges, keys and sessions"
        detail = f"too many {what}: the tenant's rate limit allows more in {wait} s"
        return TooManyRequests("rate_limited", detail, wait)
    if refusal.name.startswith(QUERIES):
        head = refusal.name[len(QUERIES) :]
        return TooManyRequests(
            "query_quota_exceeded",
            f"this request would exceed the tenant's {limit} queries per day of head {head!r}; "
            "the daily quota restarts at 00:00 UTC",
            until_tomorrow,
        )
    if refusal.name == ALIGNMENTS:
        return TooManyRequests(
            "alignment_quota_exceeded",
            f"the tenant has created its {limit} alignment sessions for today; the quota restarts at 00:00 UTC",
            until_tomorrow,
        )
    return TooManyRequests(
        "storage_quota_exceeded",
        f"this would take the tenant past its storage of {limit} bytes (keys, chunks and results held); "
        "delete finished alignment sessions or revoke keys",
        STORAGE_RETRY_SECONDS,
    )
