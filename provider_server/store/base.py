"""The provider's state store: one abstract interface, implemented per database.

Routers and services see only this class and the records in `records.py`; an implementation keeps
its storage details (SQL dialect, column encodings, schema migrations, locking) to itself. Every
implementation passes the shared contract tests (tests/unit/provider_server/test_store_contract.py).
Large values (weights, embeddings, ciphertexts) are not stored here but in the BlobStore; records
hold their blob ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime

from .records import (
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

INTERRUPTED_ERROR = "interrupted by a provider restart; POST .../compute again"
JOB_INTERRUPTED_ERROR = "interrupted by a provider restart before it finished; nothing was stored, train again"


class RecordExistsError(Exception):
    """A record with this id is already stored (ids are names chosen by the admin, or random)."""


class Store(ABC):
    """Heads, corpora, tenants and their API keys, key challenges, registered keys, alignment
    sessions, usage counters, rate buckets, the audit log and admin jobs.

    Methods are safe to call from several threads at once, and from several processes sharing one
    database: whatever must hold across requests (a challenge taken once, a quota never exceeded) is
    done in one transaction here, never as a read in the service followed by a write. `get_*` return
    None for unknown ids; `delete_*` and `revoke_*` say whether there was something to delete or revoke.

    Storage accounting: a key's and a session's `stored_bytes` are part of their tenant's "storage"
    counter (charged by `admit` before they were stored); `revoke_key` and `delete_session` give them
    back in the same transaction, and `complete_session` swaps the chunks' bytes for the result's, so
    every path that changes a record through the Store keeps the counter right."""

    # -- heads ------------------------------------------------------------------------------------
    @abstractmethod
    def add_head(self, head: HeadRecord) -> None:
        """Store a new head; RecordExistsError if its id is taken."""

    @abstractmethod
    def get_head(self, head_id: str) -> HeadRecord | None: ...

    @abstractmethod
    def list_heads(self) -> list[HeadRecord]:
        """All heads, oldest first."""

    @abstractmethod
    def delete_head(self, head_id: str) -> bool:
        """Delete the head and, in the same transaction, every head derived from it (`base_head_id`)."""

    # -- corpora ----------------------------------------------------------------------------------
    @abstractmethod
    def add_corpus(self, corpus: CorpusRecord) -> None:
        """Store a new corpus; RecordExistsError if its id is taken."""

    @abstractmethod
    def get_corpus(self, corpus_id: str) -> CorpusRecord | None: ...

    @abstractmethod
    def list_corpora(self) -> list[CorpusRecord]:
        """All corpora, oldest first."""

    @abstractmethod
    def delete_corpus(self, corpus_id: str) -> bool: ...

    # -- keys -------------------------------------------------------------------------------------
    @abstractmethod
    def add_key(self, key: KeyRecord) -> None:
        """Store a newly registered key; RecordExistsError if its id is taken."""

    @abstractmethod
    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key, revoked or not (callers decide what a revoked key means to them)."""

    @abstractmethod
    def list_keys(self) -> list[KeyRecord]:
        """Unrevoked keys, by client name, then oldest first."""

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool:
        """Revoke an unrevoked key and release its `stored_bytes` from its tenant's storage; False if
        it is unknown or already revoked."""

    # -- key challenges ---------------------------------------------------------------------------
    @abstractmethod
    def add_challenge(self, challenge: ChallengeRecord) -> None:
        """Store a newly issued challenge; RecordExistsError if its id is taken."""

    @abstractmethod
    def take_challenge(self, challenge_id: str, tenant_id: str) -> ChallengeRecord | None:
        """Mark a challenge of `tenant_id` used and return it as it was before (so `used` says whether
        an earlier registration had taken it), atomically: of two registrations naming one challenge,
        exactly one sees it unused. None, and nothing marked, if it is unknown or another tenant's."""

    @abstractmethod
    def prune_challenges(self, expired_before: datetime) -> int:
        """Delete the challenges that expired before `expired_before`; returns how many."""

    # -- alignment sessions -----------------------------------------------------------------------
    @abstractmethod
    def add_session(self, session: SessionRecord) -> None:
        """Store a new session; RecordExistsError if its id is taken."""

    @abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    def mark_received(
        self, session_id: str, indices: Iterable[int], data_scale_bits: int, added_bytes: int = 0
    ) -> SessionRecord | None:
        """Add uploaded ciphertext indices and the chunk's data scale, atomically: concurrent chunk
        uploads must not lose each other's indices. `added_bytes` (already charged to the tenant's
        storage) join the session's `stored_bytes`. Returns the updated session (None if unknown)."""

    @abstractmethod
    def claim_for_compute(
        self,
        session_id: str,
        owner: str | None = None,
        lease_until: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Move a session that is neither computing nor done to computing (no columns computed, no
        error), held by replica `owner` until `lease_until`, atomically; False if it is unknown, done,
        or computing under a lease that has not expired by `now`, so one session is never computed
        twice at once by live replicas. A computing session whose lease expired before `now` (its
        replica died) is claimed anew; without `now` (or without a lease) no lease counts as expired."""

    @abstractmethod
    def renew_lease(self, session_id: str, owner: str, lease_until: datetime) -> bool:
        """Extend the lease of a computing session `owner` holds (its heartbeat); False if it holds
        it no longer (the session was claimed by another replica, finished, failed or deleted)."""

    @abstractmethod
    def add_computed_columns(self, session_id: str, columns: int, owner: str | None = None) -> None:
        """Progress of a running computation (pieces finish in any order); with `owner`, counted only
        while that replica holds the computation."""

    @abstractmethod
    def complete_session(
        self,
        session_id: str,
        result_blob: str,
        computed_columns: int,
        result_bytes: int = 0,
        owner: str | None = None,
    ) -> bool:
        """The computation finished: the session is done and its result is in `result_blob`. The
        session now holds its result instead of its chunks (which the computation deletes): its
        `stored_bytes` become `result_bytes`, and its tenant's storage changes by the difference
        (never refused: the session was admitted, and its result is bounded by its own size). With
        `owner`, only if that replica still holds the computation; False if nothing was changed."""

    @abstractmethod
    def complete_provider_held(
        self, session_id: str, head: HeadRecord, choice: Sequence[tuple[str, float]], computed_columns: int
    ) -> bool:
        """A provider-held computation finished, in one transaction: store the derived `head`, mark the
        session done with it (and what the map method chose), and release the session's chunk bytes from
        its tenant's storage. False, and nothing stored, if the session or its base head is gone meanwhile;
        RecordExistsError if the head's id is taken."""

    @abstractmethod
    def fail_session(self, session_id: str, error: str, owner: str | None = None) -> bool:
        """The computation failed; `error` tells the client why. With `owner`, only if that replica
        still holds the computation (a replica that lost its lease must not fail the new holder's)."""

    @abstractmethod
    def interrupt_running_sessions(
        self, *, owner: str | None = None, expired_before: datetime | None = None, session_id: str | None = None
    ) -> int:
        """Fail computing sessions with INTERRUPTED_ERROR (nothing computes them any more, and a
        session must not stay "computing" for ever); returns how many. Each filter given narrows the
        set: computations held by replica `owner` (it restarted), whose lease expired before
        `expired_before` (their replica died), or the one session `session_id`; none: every one."""

    @abstractmethod
    def delete_session(self, session_id: str) -> bool:
        """Delete the session and release its `stored_bytes` from its tenant's storage."""

    # -- tenants and API keys ---------------------------------------------------------------------
    @abstractmethod
    def add_tenant(self, tenant: TenantRecord) -> None:
        """Store a new tenant; RecordExistsError if its id or its name is taken."""

    @abstractmethod
    def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    @abstractmethod
    def list_tenants(self) -> list[TenantRecord]:
        """All tenants, oldest first."""

    @abstractmethod
    def update_tenant(
        self, tenant_id: str, *, disabled: bool | None = None, quotas: Quotas | None = None
    ) -> TenantRecord | None:
        """Set what is given (quotas replace the tenant's quotas whole); the updated tenant, or None."""

    @abstractmethod
    def add_api_key(self, key: ApiKeyRecord) -> None:
        """Store a new API key; RecordExistsError if its id is taken."""

    @abstractmethod
    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The API key, revoked or not."""

    @abstractmethod
    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        """A tenant's API keys, revoked ones included, oldest first."""

    @abstractmethod
    def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        """Revoke an unrevoked API key of this tenant; False if there is none."""

    # -- usage, quotas and rate limits ------------------------------------------------------------
    @abstractmethod
    def admit(self, tenant_id: str, charges: Sequence[Charge], bucket: Bucket | None, now: datetime) -> Refusal | None:
        """Check and charge in one transaction: refill the tenant's bucket (if any) to `now` and take
        one token, and add every charge to its counter; if any would be refused (no whole token,
        a counter past its limit), nothing is changed at all and the first refusal is returned."""

    @abstractmethod
    def refund(self, tenant_id: str, charges: Sequence[Charge]) -> None:
        """Give back charges `admit` made (the request failed later); counters never go below zero.
        Tokens are not given back: a bucket limits attempts."""

    @abstractmethod
    def usage(self, tenant_id: str, periods: Sequence[str]) -> list[Counter]:
        """The tenant's non-zero counters in these periods, by counter name."""

    # -- audit log --------------------------------------------------------------------------------
    @abstractmethod
    def append_audit(self, record: AuditRecord) -> AuditRecord:
        """Append one line; returns it with its `seq`. There is no update and no delete."""

    @abstractmethod
    def list_audit(self, tenant_id: str | None, after_seq: int, limit: int) -> list[AuditRecord]:
        """Lines with seq > `after_seq`, ascending, at most `limit`; one tenant's, or all (None)."""

    # -- retention (the garbage collector's view: `provider_server.retention`) -------------------
    @abstractmethod
    def all_keys(self) -> list[KeyRecord]:
        """Every stored key, revoked ones included, oldest first."""

    @abstractmethod
    def delete_key(self, key_id: str) -> bool:
        """Forget a key record (revoked, long expired or spent); its blobs are the caller's."""

    @abstractmethod
    def list_sessions(self) -> list[SessionRecord]:
        """Every alignment session, oldest first."""

    # -- admin jobs -------------------------------------------------------------------------------
    @abstractmethod
    def add_job(self, job: JobRecord, max_active: int) -> bool:
        """Store a new job unless `max_active` jobs of its kind are queued or running already (checked
        and inserted in one transaction); False, and nothing stored, when the bound is reached."""

    @abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def list_jobs(self, limit: int) -> list[JobRecord]:
        """The newest `limit` jobs, newest first."""

    @abstractmethod
    def start_job(self, job_id: str, now: datetime) -> bool:
        """Move a queued job to running; False if it is not queued (cancelled meanwhile, or unknown)."""

    @abstractmethod
    def set_job_pid(self, job_id: str, pid: int | None) -> None:
        """Record (or clear) the process that runs the job."""

    @abstractmethod
    def cancel_job(self, job_id: str, now: datetime, reason: str) -> tuple[JobRecord, bool] | None:
        """Cancel a queued or running job, atomically; the job as it is afterwards and whether this call
        cancelled it (False: it had finished already). None if it is unknown."""

    @abstractmethod
    def fail_job(self, job_id: str, now: datetime, error_code: str, error: str) -> bool:
        """Fail a queued or running job; False (nothing changed) if it had finished or was cancelled."""

    @abstractmethod
    def complete_job(self, job_id: str, now: datetime, head: HeadRecord, seconds: float) -> bool:
        """Store the trained head and mark its running job succeeded, in one transaction: False, and no
        head stored, if the job is no longer running (cancelled meanwhile); RecordExistsError, and
        nothing changed, if a head with its id exists."""

    @abstractmethod
    def interrupt_running_jobs(self) -> int:
        """Fail every queued or running job with JOB_INTERRUPTED_ERROR (after a restart no process
        runs them); returns how many."""

    # -- lifetime ---------------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...
