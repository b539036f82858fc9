"""The Store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL, chosen by the URL.

What must hold across requests holds in the database, for threads and for processes alike:
- SQLite: every write transaction begins with `BEGIN IMMEDIATE`, so it owns the database's write
  lock from its first read; within one process a lock also guards the single connection.
- PostgreSQL: READ COMMITTED transactions with row locks (`SELECT ... FOR UPDATE`) where one row is
  read and then written (a challenge, a session's received indices), single-statement updates where
  the condition is in the WHERE clause (claiming a computation), and a transaction-level advisory
  lock per tenant around everything that reads and then changes a tenant's counters or bucket (the
  rows may not exist yet, so there is no row to lock). Appends to the audit log take one advisory
  lock too, so that sequence numbers become visible in order and a reader paging by `after_seq`
  never skips a line that commits late.
Statements are built once, here, and compiled once per database (`prepared.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Engine, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable
from sqlalchemy.sql.schema import Table

from shared_protocol.messages import AlignmentState, JobState

from . import codec
from . import engine as engines
from .base import INTERRUPTED_ERROR, JOB_INTERRUPTED_ERROR, Store
from .migrate import upgrade
from .records import (
    ACTIVE_JOB_STATES,
    ApiKeyRecord,
    AuditRecord,
    Bucket,
    ChallengeRecord,
    Charge,
    CorpusRecord,
    Counter,
    HeadRecord,
    JobRecord,
    KeyRecord,
    Quotas,
    Refusal,
    SessionRecord,
    TenantRecord,
)
from .schema import (
    api_keys,
    audit_log,
    challenges,
    corpora,
    heads,
    jobs,
    keys,
    rate_buckets,
    sessions,
    tenants,
    usage_counters,
)
from .transactions import Database, Tx

#: The counter a key's and a session's stored bytes belong to (period "": it never resets).
STORAGE_COUNTER = "storage"

_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger())).label("locked"))
#: The advisory lock key of the audit log's appends.
_AUDIT_LOCK = 0x68656C6978_617564


def _lock_key(kind: str, ident: str) -> int:
    """A stable signed 64-bit advisory lock key for one object (a collision only serialises more)."""
    return int.from_bytes(hashlib.blake2b(f"{kind}\0{ident}".encode(), digest_size=8).digest(), "big", signed=True)


def refill(bucket: Bucket, tokens: float | None, updated_at: datetime | None, now: datetime) -> float:
    """The bucket's tokens at `now`: full when new, else refilled by the time passed (never above burst;
    a clock that went back refills nothing)."""
    if tokens is None or updated_at is None:
        return float(bucket.burst)
    elapsed = max(0.0, (now - updated_at).total_seconds())
    return min(float(bucket.burst), tokens + elapsed * bucket.rate_per_second)


def _by(table: Table, *names: str) -> Any:
    """The WHERE clause `table.name = :w_name AND ...` for a statement built once (an UPDATE reserves
    the columns' own names for its SET clause, hence the prefix); `_w` makes its parameters."""
    return and_(*(table.c[n] == bindparam(f"w_{n}") for n in names))


def _w(**values: Any) -> dict[str, Any]:
    return {f"w_{name}": value for name, value in values.items()}


# Statements of both databases (the upserts, whose constructs are dialect-specific, are built below for each).
_GET_HEAD = select(heads).where(_by(heads, "id"))
_LIST_HEADS = select(heads).order_by(heads.c.created_at)
_DELETE_HEAD = delete(heads).where(_by(heads, "id"))
_DELETE_DERIVED_HEADS = delete(heads).where(_by(heads, "base_head_id"))
#: A base head kept from deletion until a derived head's transaction commits (PostgreSQL; SQLite's
#: write lock already serialises the two).
_SHARE_HEAD = select(heads.c.id).where(_by(heads, "id")).with_for_update(read=True)
_GET_CORPUS = select(corpora).where(_by(corpora, "id"))
_LIST_CORPORA = select(corpora).order_by(corpora.c.created_at)
_DELETE_CORPUS = delete(corpora).where(_by(corpora, "id"))
_GET_KEY = select(keys).where(_by(keys, "key_id"))
_LOCK_KEY = select(keys.c.tenant_id, keys.c.stored_bytes, keys.c.revoked).where(_by(keys, "key_id")).with_for_update()
_LIST_KEYS = select(keys).where(keys.c.revoked.is_(False)).order_by(keys.c.client_name, keys.c.created_at)
_ALL_KEYS = select(keys).order_by(keys.c.created_at)
_REVOKE_KEY = update(keys).where(_by(keys, "key_id")).values(revoked=True)
_DELETE_KEY = delete(keys).where(_by(keys, "key_id"))
_LOCK_CHALLENGE = select(challenges).where(_by(challenges, "challenge_id", "tenant_id")).with_for_update()
_USE_CHALLENGE = update(challenges).where(_by(challenges, "challenge_id")).values(used=True)
_PRUNE_CHALLENGES = delete(challenges).where(
    challenges.c.expires_at < bindparam("before", type_=challenges.c.expires_at.type)
)
_GET_SESSION = select(sessions).where(_by(sessions, "session_id"))
_LIST_SESSIONS = select(sessions).order_by(sessions.c.created_at)
_COMPUTING = sessions.c.state == AlignmentState.computing.value
_CLAIMABLE = and_(sessions.c.state != AlignmentState.computing.value, sessions.c.state != AlignmentState.done.value)
_LEASE_EXPIRED = and_(
    sessions.c.lease_expires_at.is_not(None),
    sessions.c.lease_expires_at < bindparam("expired_before", type_=sessions.c.lease_expires_at.type),
)
#: "computing, held by replica `owner`" (a statement's extra condition when an owner is given).
_OWNED = and_(_COMPUTING, sessions.c.compute_owner == bindparam("w_owner"))
_LOCK_RECEIVED = select(sessions.c.received).where(_by(sessions, "session_id")).with_for_update()
_LOCK_SESSION = (
    select(sessions.c.tenant_id, sessions.c.stored_bytes).where(_by(sessions, "session_id")).with_for_update()
)
_LOCK_OWNED = (
    select(sessions.c.tenant_id, sessions.c.stored_bytes).where(_by(sessions, "session_id"), _OWNED).with_for_update()
)
_LOCK_PROVIDER_HELD = (
    select(sessions.c.tenant_id, sessions.c.stored_bytes, sessions.c.head_id)
    .where(_by(sessions, "session_id"))
    .with_for_update()
)
_MARK_RECEIVED = (
    update(sessions)
    .where(_by(sessions, "session_id"))
    .values(
        received=bindparam("new_received"),
        data_scale_bits=bindparam("new_scale"),
        stored_bytes=sessions.c.stored_bytes + bindparam("added", type_=sessions.c.stored_bytes.type),
    )
    .returning(*sessions.c)
)


def _claim(expirable: bool) -> Any:
    """Claim a session for computation under a lease; `expirable`: a computation whose lease expired
    before :expired_before is claimed anew (without it, no lease counts as expired)."""
    claimable = or_(_CLAIMABLE, and_(_COMPUTING, _LEASE_EXPIRED)) if expirable else _CLAIMABLE
    return (
        update(sessions)
        .where(_by(sessions, "session_id"), claimable)
        .values(
            state=AlignmentState.computing.value,
            computed_columns=0,
            error=None,
            compute_owner=bindparam("new_owner"),
            lease_expires_at=bindparam("new_lease", type_=sessions.c.lease_expires_at.type),
        )
    )


_CLAIM = _claim(expirable=False)
_CLAIM_EXPIRABLE = _claim(expirable=True)
_RENEW_LEASE = (
    update(sessions)
    .where(_by(sessions, "session_id"), _OWNED)
    .values(lease_expires_at=bindparam("new_lease", type_=sessions.c.lease_expires_at.type))
)
_ADD_COLUMNS = (
    update(sessions)
    .where(_by(sessions, "session_id"))
    .values(computed_columns=sessions.c.computed_columns + bindparam("columns", type_=sessions.c.computed_columns.type))
)
_ADD_OWNED_COLUMNS = _ADD_COLUMNS.where(_OWNED)
_COMPLETE = (
    update(sessions)
    .where(_by(sessions, "session_id"))
    .values(
        state=AlignmentState.done.value,
        result_blob=bindparam("new_blob"),
        computed_columns=bindparam("new_columns"),
        stored_bytes=bindparam("result_bytes"),
        lease_expires_at=None,
    )
)
_COMPLETE_PROVIDER_HELD = (
    update(sessions)
    .where(_by(sessions, "session_id"))
    .values(
        state=AlignmentState.done.value,
        derived_head_id=bindparam("new_head"),
        map_choice=bindparam("new_choice"),
        computed_columns=bindparam("new_columns"),
        stored_bytes=0,
    )
)
_FAIL = (
    update(sessions)
    .where(_by(sessions, "session_id"))
    .values(state=AlignmentState.failed.value, error=bindparam("new_error"), lease_expires_at=None)
)
_FAIL_OWNED = _FAIL.where(_OWNED)


def _interrupt(owner: bool, expired: bool, one: bool) -> Any:
    """Fail computing sessions, narrowed by each filter that is on: held by :w_owner, lease expired
    before :expired_before, the one session :w_session_id."""
    where = [_COMPUTING]
    if owner:
        where.append(sessions.c.compute_owner == bindparam("w_owner"))
    if expired:
        where.append(_LEASE_EXPIRED)
    if one:
        where.append(_by(sessions, "session_id"))
    return (
        update(sessions)
        .where(*where)
        .values(state=AlignmentState.failed.value, error=INTERRUPTED_ERROR, lease_expires_at=None)
    )


#: One statement per combination of filters (owner, expired, one session), each compiled once.
_INTERRUPTS = {
    (owner, expired, one): _interrupt(owner, expired, one)
    for owner in (False, True)
    for expired in (False, True)
    for one in (False, True)
}
_DELETE_SESSION = delete(sessions).where(_by(sessions, "session_id"))
_GET_TENANT = select(tenants).where(_by(tenants, "tenant_id"))
_LIST_TENANTS = select(tenants).order_by(tenants.c.created_at, tenants.c.tenant_id)
_GET_API_KEY = select(api_keys).where(_by(api_keys, "key_id"))
_LIST_API_KEYS = select(api_keys).where(_by(api_keys, "tenant_id")).order_by(api_keys.c.created_at, api_keys.c.key_id)
_REVOKE_API_KEY = (
    update(api_keys).where(_by(api_keys, "key_id", "tenant_id"), api_keys.c.revoked.is_(False)).values(revoked=True)
)
_GET_BUCKET = select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(_by(rate_buckets, "tenant_id", "bucket"))
_GET_COUNTER = select(usage_counters.c.value).where(_by(usage_counters, "tenant_id", "counter", "period"))
_INSERT_COUNTER = insert(usage_counters)
_UPDATE_COUNTER = (
    update(usage_counters)
    .where(_by(usage_counters, "tenant_id", "counter", "period"))
    .values(value=bindparam("new_value"))
)
_DELETE_COUNTER = delete(usage_counters).where(_by(usage_counters, "tenant_id", "counter", "period"))
_USAGE = select(usage_counters.c.counter, usage_counters.c.period, usage_counters.c.value).where(
    _by(usage_counters, "tenant_id", "period"), usage_counters.c.value > 0
)
_SET_DISABLED = update(tenants).where(_by(tenants, "tenant_id")).values(disabled=bindparam("new_disabled"))
_SET_QUOTAS = (
    update(tenants)
    .where(_by(tenants, "tenant_id"))
    .values({name: bindparam(f"new_{name}") for name in codec.quota_row(Quotas())})
)
_INSERTS = {t.name: insert(t) for t in (heads, corpora, keys, challenges, sessions, tenants, api_keys, jobs)}
_APPEND_AUDIT = insert(audit_log).returning(audit_log.c.seq)
_LIST_AUDIT = (
    select(audit_log).where(audit_log.c.seq > bindparam("after")).order_by(audit_log.c.seq).limit(bindparam("n"))
)
_LIST_TENANT_AUDIT = (
    select(audit_log)
    .where(audit_log.c.tenant_id == bindparam("w_tenant_id"), audit_log.c.seq > bindparam("after"))
    .order_by(audit_log.c.seq)
    .limit(bindparam("n"))
)


# Admin jobs. "Active" is spelled out rather than IN (...), which would expand per call.
_ACTIVE_JOB = or_(*(jobs.c.state == state.value for state in ACTIVE_JOB_STATES))
_COUNT_ACTIVE_JOBS = select(func.count().label("n")).select_from(jobs).where(_by(jobs, "kind"), _ACTIVE_JOB)
_GET_JOB = select(jobs).where(_by(jobs, "job_id"))
_LIST_JOBS = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(bindparam("n"))
_START_JOB = (
    update(jobs)
    .where(_by(jobs, "job_id"), jobs.c.state == JobState.queued.value)
    .values(state=JobState.running.value, started_at=bindparam("now", type_=jobs.c.started_at.type))
)
_SET_JOB_PID = update(jobs).where(_by(jobs, "job_id")).values(pid=bindparam("new_pid", type_=jobs.c.pid.type))
_END_ACTIVE_JOB = (
    update(jobs)
    .where(_by(jobs, "job_id"), _ACTIVE_JOB)
    .values(
        state=bindparam("new_state"),
        finished_at=bindparam("now", type_=jobs.c.finished_at.type),
        pid=None,
        error_code=bindparam("new_error_code"),
        error=bindparam("new_error"),
    )
)
_SUCCEED_JOB = (
    update(jobs)
    .where(_by(jobs, "job_id"), jobs.c.state == JobState.running.value)
    .values(
        state=JobState.succeeded.value,
        finished_at=bindparam("now", type_=jobs.c.finished_at.type),
        pid=None,
        seconds=bindparam("new_seconds", type_=jobs.c.seconds.type),
    )
)
_INTERRUPT_JOBS = (
    update(jobs)
    .where(_ACTIVE_JOB)
    .values(
        state=JobState.failed.value,
        finished_at=bindparam("now", type_=jobs.c.finished_at.type),
        pid=None,
        error_code="job_interrupted",
        error=JOB_INTERRUPTED_ERROR,
    )
)


def _put_bucket(dialect_insert: Any) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE of a tenant's bucket (the same SQL on both databases)."""
    stmt = dialect_insert(rate_buckets)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "bucket"],
        set_={"tokens": stmt.excluded.tokens, "updated_at": stmt.excluded.updated_at},
    )


def _bump_counter(dialect_insert: Any) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE adding to a tenant's counter (a positive amount: never zero)."""
    stmt = dialect_insert(usage_counters)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "counter", "period"],
        set_={"value": usage_counters.c.value + stmt.excluded.value},
    )


_PUT_BUCKET = {"postgresql": _put_bucket(postgresql.insert), "sqlite": _put_bucket(sqlite.insert)}
_BUMP_COUNTER = {"postgresql": _bump_counter(postgresql.insert), "sqlite": _bump_counter(sqlite.insert)}
_COUNTER_KEYS = [c.key for c in usage_counters.c]
_AUDIT_KEYS = [c.key for c in audit_log.c if c.key != "seq"]


def _statements(dialect: str) -> list[tuple[Any, list[str] | None]]:
    """Every statement the Store runs, with the columns an INSERT fills (to prepare them)."""
    plain = [v for k, v in globals().items() if k.startswith("_") and k.isupper() and isinstance(v, Executable)]
    inserts = [(stmt, [c.key for c in stmt.table.c]) for stmt in _INSERTS.values()]
    return [
        *[(stmt, None) for stmt in plain if stmt is not _INSERT_COUNTER and stmt is not _APPEND_AUDIT],
        *[(stmt, None) for stmt in _INTERRUPTS.values()],
        *inserts,
        (_INSERT_COUNTER, _COUNTER_KEYS),
        (_APPEND_AUDIT, _AUDIT_KEYS),
        (_PUT_BUCKET[dialect], [c.key for c in rate_buckets.c]),
        (_BUMP_COUNTER[dialect], _COUNTER_KEYS),
    ]


class SqlStore(Store):
    """The Store on a database URL (`sqlite:///...`, `postgresql+psycopg://...`); migrates at open."""

    def __init__(self, url: str) -> None:
        engine = engines.create(engines.normalise_url(url))
        self.dialect = engine.dialect.name
        self._postgresql = self.dialect == "postgresql"
        with engines.storage_errors():
            upgrade(engine)
        self._db = Database(engine, _statements(self.dialect))

    @property
    def _engine(self) -> Engine:
        return self._db.engine

    def close(self) -> None:
        self._db.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _one(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        return self._db.reading(lambda c: c.first(stmt, params))

    def _all(self, stmt: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._db.reading(lambda c: c.all(stmt, params or {}))

    def _insert(self, table: Table, row: dict[str, Any]) -> None:
        try:
            with self._db.write() as c:
                c.change(_INSERTS[table.name], row)
        except Exception as exc:
            if engines.is_duplicate(exc):
                raise engines.duplicate_as_exists(table.name, exc) from None
            raise

    def _change(self, stmt: Any, params: dict[str, Any] | None = None) -> int:
        with self._db.write() as c:
            return c.change(stmt, params or {})

    def _lock_tenant(self, c: Tx, tenant_id: str) -> None:
        """Serialise, across processes, the transactions that read and then change a tenant's counters
        or buckets (SQLite's write lock already does)."""
        if self._postgresql:
            c.scalar(_ADVISORY_LOCK, {"key": _lock_key("tenant", tenant_id)})

    # -- heads ------------------------------------------------------------------------------------
    def add_head(self, head: HeadRecord) -> None:
        self._insert(heads, codec.head_row(head))

    def get_head(self, head_id: str) -> HeadRecord | None:
        row = self._one(_GET_HEAD, _w(id=head_id))
        return codec.head(row) if row else None

    def list_heads(self) -> list[HeadRecord]:
        return [codec.head(r) for r in self._all(_LIST_HEADS)]

    def delete_head(self, head_id: str) -> bool:
        with self._db.write() as c:
            deleted = c.change(_DELETE_HEAD, _w(id=head_id))
            if deleted:
                c.change(_DELETE_DERIVED_HEADS, _w(base_head_id=head_id))
        return deleted > 0

    # -- corpora ----------------------------------------------------------------------------------
    def add_corpus(self, corpus: CorpusRecord) -> None:
        self._insert(corpora, codec.corpus_row(corpus))

    def get_corpus(self, corpus_id: str) -> CorpusRecord | None:
        row = self._one(_GET_CORPUS, _w(id=corpus_id))
        return codec.corpus(row) if row else None

    def list_corpora(self) -> list[CorpusRecord]:
        return [codec.corpus(r) for r in self._all(_LIST_CORPORA)]

    def delete_corpus(self, corpus_id: str) -> bool:
        return self._change(_DELETE_CORPUS, _w(id=corpus_id)) > 0

    # -- keys -------------------------------------------------------------------------------------
    def add_key(self, key: KeyRecord) -> None:
        self._insert(keys, codec.key_row(key))

    def get_key(self, key_id: str) -> KeyRecord | None:
        row = self._one(_GET_KEY, _w(key_id=key_id))
        return codec.key(row) if row else None

    def list_keys(self) -> list[KeyRecord]:
        return [codec.key(r) for r in self._all(_LIST_KEYS)]

    def revoke_key(self, key_id: str) -> bool:
        with self._db.write() as c:
            row = c.first(_LOCK_KEY, _w(key_id=key_id))
            if row is None or row["revoked"]:
                return False
            c.change(_REVOKE_KEY, _w(key_id=key_id))
            self._release(c, row["tenant_id"], row["stored_bytes"])
        return True

    def all_keys(self) -> list[KeyRecord]:
        return [codec.key(r) for r in self._all(_ALL_KEYS)]

    def delete_key(self, key_id: str) -> bool:
        """Delete a key's record; an unrevoked key's bytes leave its tenant's storage count with it (a
        revoked key's left at revocation)."""
        with self._db.write() as c:
            row = c.first(_LOCK_KEY, _w(key_id=key_id))
            if row is None:
                return False
            c.change(_DELETE_KEY, _w(key_id=key_id))
            if not row["revoked"]:
                self._release(c, row["tenant_id"], row["stored_bytes"])
        return True

    # -- key challenges ---------------------------------------------------------------------------
    def add_challenge(self, challenge: ChallengeRecord) -> None:
        self._insert(challenges, codec.challenge_row(challenge))

    def take_challenge(self, challenge_id: str, tenant_id: str) -> ChallengeRecord | None:
        with self._db.write() as c:
            row = c.first(_LOCK_CHALLENGE, _w(challenge_id=challenge_id, tenant_id=tenant_id))
            if row is not None:
                c.change(_USE_CHALLENGE, _w(challenge_id=challenge_id))
        return codec.challenge(row) if row else None

    def prune_challenges(self, expired_before: datetime) -> int:
        return self._change(_PRUNE_CHALLENGES, {"before": expired_before})

    # -- alignment sessions -----------------------------------------------------------------------
    def add_session(self, session: SessionRecord) -> None:
        self._insert(sessions, codec.session_row(session))

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._one(_GET_SESSION, _w(session_id=session_id))
        return codec.session(row) if row else None

    def list_sessions(self) -> list[SessionRecord]:
        return [codec.session(r) for r in self._all(_LIST_SESSIONS)]

    def mark_received(
        self, session_id: str, indices: Iterable[int], data_scale_bits: int, added_bytes: int = 0
    ) -> SessionRecord | None:
        with self._db.write() as c:
            row = c.first(_LOCK_RECEIVED, _w(session_id=session_id))
            if row is None:
                return None
            got = set(json.loads(row["received"])) | set(indices)
            params = {
                "w_session_id": session_id,
                "new_received": json.dumps(sorted(got)),
                "new_scale": data_scale_bits,
                "added": added_bytes,
            }
            updated = c.first(_MARK_RECEIVED, params)
            assert updated is not None
        return codec.session(updated)

    def claim_for_compute(
        self,
        session_id: str,
        owner: str | None = None,
        lease_until: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        params = {**_w(session_id=session_id), "new_owner": owner, "new_lease": lease_until}
        if now is None:
            return self._change(_CLAIM, params) > 0
        return self._change(_CLAIM_EXPIRABLE, {**params, "expired_before": now}) > 0

    def renew_lease(self, session_id: str, owner: str, lease_until: datetime) -> bool:
        return self._change(_RENEW_LEASE, {**_w(session_id=session_id, owner=owner), "new_lease": lease_until}) > 0

    def add_computed_columns(self, session_id: str, columns: int, owner: str | None = None) -> None:
        if owner is None:
            self._change(_ADD_COLUMNS, {**_w(session_id=session_id), "columns": columns})
        else:
            self._change(_ADD_OWNED_COLUMNS, {**_w(session_id=session_id, owner=owner), "columns": columns})

    def complete_session(
        self,
        session_id: str,
        result_blob: str,
        computed_columns: int,
        result_bytes: int = 0,
        owner: str | None = None,
    ) -> bool:
        with self._db.write() as c:
            if owner is None:
                row = c.first(_LOCK_SESSION, _w(session_id=session_id))
            else:
                row = c.first(_LOCK_OWNED, _w(session_id=session_id, owner=owner))
            if row is None:
                return False
            params = {
                "w_session_id": session_id,
                "new_blob": result_blob,
                "new_columns": computed_columns,
                "result_bytes": result_bytes,
            }
            c.change(_COMPLETE, params)
            if row["tenant_id"] is not None:
                self._lock_tenant(c, row["tenant_id"])
                self._add(c, row["tenant_id"], STORAGE_COUNTER, "", result_bytes - row["stored_bytes"])
        return True

    def complete_provider_held(
        self, session_id: str, head: HeadRecord, choice: Sequence[tuple[str, float]], computed_columns: int
    ) -> bool:
        try:
            with self._db.write() as c:
                row = c.first(_LOCK_PROVIDER_HELD, _w(session_id=session_id))
                if row is None or c.first(_SHARE_HEAD, _w(id=row["head_id"])) is None:
                    return False
                c.change(_INSERTS[heads.name], codec.head_row(head))
                params = {
                    "w_session_id": session_id,
                    "new_head": head.id,
                    "new_choice": codec.pairs_text(choice),
                    "new_columns": computed_columns,
                }
                c.change(_COMPLETE_PROVIDER_HELD, params)
                self._release(c, row["tenant_id"], row["stored_bytes"])
        except Exception as exc:
            if engines.is_duplicate(exc):
                raise engines.duplicate_as_exists(heads.name, exc) from None
            raise
        return True

    def fail_session(self, session_id: str, error: str, owner: str | None = None) -> bool:
        if owner is None:
            return self._change(_FAIL, {**_w(session_id=session_id), "new_error": error}) > 0
        return self._change(_FAIL_OWNED, {**_w(session_id=session_id, owner=owner), "new_error": error}) > 0

    def interrupt_running_sessions(
        self, *, owner: str | None = None, expired_before: datetime | None = None, session_id: str | None = None
    ) -> int:
        stmt = _INTERRUPTS[(owner is not None, expired_before is not None, session_id is not None)]
        params = {**_w(owner=owner, session_id=session_id), "expired_before": expired_before}
        return self._change(stmt, params)

    def delete_session(self, session_id: str) -> bool:
        with self._db.write() as c:
            row = c.first(_LOCK_SESSION, _w(session_id=session_id))
            if row is None:
                return False
            c.change(_DELETE_SESSION, _w(session_id=session_id))
            self._release(c, row["tenant_id"], row["stored_bytes"])
        return True

    # -- tenants and API keys ---------------------------------------------------------------------
    def add_tenant(self, tenant: TenantRecord) -> None:
        self._insert(tenants, codec.tenant_row(tenant))

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        row = self._one(_GET_TENANT, _w(tenant_id=tenant_id))
        return codec.tenant(row) if row else None

    def list_tenants(self) -> list[TenantRecord]:
        return [codec.tenant(r) for r in self._all(_LIST_TENANTS)]

    def update_tenant(
        self, tenant_id: str, *, disabled: bool | None = None, quotas: Quotas | None = None
    ) -> TenantRecord | None:
        with self._db.write() as c:
            if disabled is not None:
                c.change(_SET_DISABLED, {**_w(tenant_id=tenant_id), "new_disabled": disabled})
            if quotas is not None:
                new = {f"new_{name}": value for name, value in codec.quota_row(quotas).items()}
                c.change(_SET_QUOTAS, {**_w(tenant_id=tenant_id), **new})
            row = c.first(_GET_TENANT, _w(tenant_id=tenant_id))
        return codec.tenant(row) if row else None

    def add_api_key(self, key: ApiKeyRecord) -> None:
        self._insert(api_keys, codec.api_key_row(key))

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._one(_GET_API_KEY, _w(key_id=key_id))
        return codec.api_key(row) if row else None

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        return [codec.api_key(r) for r in self._all(_LIST_API_KEYS, _w(tenant_id=tenant_id))]

    def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        return self._change(_REVOKE_API_KEY, _w(key_id=key_id, tenant_id=tenant_id)) > 0

    # -- usage, quotas and rate limits ------------------------------------------------------------
    def admit(self, tenant_id: str, charges: Sequence[Charge], bucket: Bucket | None, now: datetime) -> Refusal | None:
        with self._db.write() as c:
            self._lock_tenant(c, tenant_id)
            tokens = None
            if bucket is not None:
                row = c.first(_GET_BUCKET, _w(tenant_id=tenant_id, bucket=bucket.name))
                tokens = refill(bucket, row["tokens"] if row else None, row["updated_at"] if row else None, now)
                if tokens < 1.0:
                    return Refusal(bucket.name, wait_seconds=(1.0 - tokens) / bucket.rate_per_second)
            for charge in charges:
                if charge.limit is not None and self._value(c, tenant_id, charge) + charge.amount > charge.limit:
                    return Refusal(charge.counter)
            if bucket is not None and tokens is not None:
                params = {"tenant_id": tenant_id, "bucket": bucket.name, "tokens": tokens - 1.0, "updated_at": now}
                c.change(_PUT_BUCKET[self.dialect], params)
            for charge in charges:
                if charge.amount > 0:  # one statement, whether the counter has a row yet or not
                    row = {"tenant_id": tenant_id, "counter": charge.counter, "period": charge.period}
                    c.change(_BUMP_COUNTER[self.dialect], {**row, "value": charge.amount})
                else:
                    self._add(c, tenant_id, charge.counter, charge.period, charge.amount)
        return None

    def refund(self, tenant_id: str, charges: Sequence[Charge]) -> None:
        with self._db.write() as c:
            self._lock_tenant(c, tenant_id)
            for charge in charges:
                self._add(c, tenant_id, charge.counter, charge.period, -charge.amount)

    def usage(self, tenant_id: str, periods: Sequence[str]) -> list[Counter]:
        if not periods:
            return []
        rows = self._db.reading(
            lambda c: [r for p in sorted(set(periods)) for r in c.all(_USAGE, _w(tenant_id=tenant_id, period=p))]
        )
        rows.sort(key=lambda r: (r["counter"], r["period"]))
        return [Counter(counter=r["counter"], period=r["period"], value=r["value"]) for r in rows]

    @staticmethod
    def _value(c: Tx, tenant_id: str, charge: Charge) -> int:
        value = c.scalar(_GET_COUNTER, _w(tenant_id=tenant_id, counter=charge.counter, period=charge.period))
        return int(value) if value is not None else 0

    def _add(self, c: Tx, tenant_id: str | None, counter: str, period: str, amount: int) -> None:
        """Add to a counter (never below zero), under the tenant's lock; a counter back at zero has no
        row, so a charge given back leaves the table as it was."""
        if tenant_id is None or amount == 0:
            return
        key = _w(tenant_id=tenant_id, counter=counter, period=period)
        old = c.scalar(_GET_COUNTER, key)
        value = max(0, (int(old) if old is not None else 0) + amount)
        if old is None and value > 0:
            c.change(_INSERT_COUNTER, {"tenant_id": tenant_id, "counter": counter, "period": period, "value": value})
        elif old is not None and value > 0:
            c.change(_UPDATE_COUNTER, {**key, "new_value": value})
        elif old is not None:
            c.change(_DELETE_COUNTER, key)

    def _release(self, c: Tx, tenant_id: str | None, stored_bytes: int) -> None:
        if tenant_id is not None:
            self._lock_tenant(c, tenant_id)
            self._add(c, tenant_id, STORAGE_COUNTER, "", -stored_bytes)

    # -- audit log --------------------------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        with self._db.write() as c:
            if self._postgresql:
                c.scalar(_ADVISORY_LOCK, {"key": _AUDIT_LOCK})
            seq = c.scalar(_APPEND_AUDIT, codec.audit_row(record))
        return replace(record, seq=int(seq))

    def list_audit(self, tenant_id: str | None, after_seq: int, limit: int) -> list[AuditRecord]:
        if tenant_id is None:
            rows = self._all(_LIST_AUDIT, {"after": after_seq, "n": limit})
        else:
            rows = self._all(_LIST_TENANT_AUDIT, {**_w(tenant_id=tenant_id), "after": after_seq, "n": limit})
        return [codec.audit(r) for r in rows]

    # -- admin jobs -------------------------------------------------------------------------------
    def add_job(self, job: JobRecord, max_active: int) -> bool:
        try:
            with self._db.write() as c:
                if self._postgresql:  # the count and the insert as one step across processes
                    c.scalar(_ADVISORY_LOCK, {"key": _lock_key("jobs", job.kind)})
                if c.scalar(_COUNT_ACTIVE_JOBS, _w(kind=job.kind)) >= max_active:
                    return False
                c.change(_INSERTS[jobs.name], codec.job_row(job))
        except Exception as exc:
            if engines.is_duplicate(exc):
                raise engines.duplicate_as_exists(jobs.name, exc) from None
            raise
        return True

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one(_GET_JOB, _w(job_id=job_id))
        return codec.job(row) if row else None

    def list_jobs(self, limit: int) -> list[JobRecord]:
        return [codec.job(r) for r in self._all(_LIST_JOBS, {"n": limit})]

    def start_job(self, job_id: str, now: datetime) -> bool:
        return self._change(_START_JOB, {**_w(job_id=job_id), "now": now}) > 0

    def set_job_pid(self, job_id: str, pid: int | None) -> None:
        self._change(_SET_JOB_PID, {**_w(job_id=job_id), "new_pid": pid})

    def cancel_job(self, job_id: str, now: datetime, reason: str) -> tuple[JobRecord, bool] | None:
        with self._db.write() as c:
            changed = c.change(_END_ACTIVE_JOB, self._ending(job_id, now, JobState.cancelled, "job_cancelled", reason))
            row = c.first(_GET_JOB, _w(job_id=job_id))
        return (codec.job(row), changed > 0) if row else None

    def fail_job(self, job_id: str, now: datetime, error_code: str, error: str) -> bool:
        return self._change(_END_ACTIVE_JOB, self._ending(job_id, now, JobState.failed, error_code, error)) > 0

    @staticmethod
    def _ending(job_id: str, now: datetime, state: JobState, error_code: str, error: str) -> dict[str, Any]:
        return {
            **_w(job_id=job_id),
            "new_state": state.value,
            "now": now,
            "new_error_code": error_code,
            "new_error": error,
        }

    def complete_job(self, job_id: str, now: datetime, head: HeadRecord, seconds: float) -> bool:
        try:
            with self._db.write() as c:
                if c.change(_SUCCEED_JOB, {**_w(job_id=job_id), "now": now, "new_seconds": seconds}) == 0:
                    return False
                c.change(_INSERTS[heads.name], codec.head_row(head))
        except Exception as exc:
            if engines.is_duplicate(exc):
                raise engines.duplicate_as_exists(heads.name, exc) from None
            raise
        return True

    def interrupt_running_jobs(self) -> int:
        return self._change(_INTERRUPT_JOBS, {"now": datetime.now(UTC)})
