"""The provider's state store: one abstract interface, implemented per database.

Routers and services see only this class and the records in `records.py`; an implementation keeps
its storage details (SQL dialect, column encodings, schema migrations, locking) to itself. Every
implementation passes the shared contract tests (tests/unit/provider_server/test_store_contract.py).
Large values (weights, embeddings, ciphertexts) are not stored here but in the BlobStore; records
hold their blob ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime

from .records import ChallengeRecord, CorpusRecord, HeadRecord, KeyRecord, SessionRecord

INTERRUPTED_ERROR = "interrupted by a provider restart; POST .../compute again"


class RecordExistsError(Exception):
    """A record with this id is already stored (ids are names chosen by the admin, or random)."""


class Store(ABC):
    """Heads, corpora, key challenges, registered keys and alignment sessions.

    Methods are safe to call from several threads at once. `get_*` return None for unknown ids;
    `delete_*` and `revoke_key` say whether there was something to delete or revoke."""

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
    def delete_head(self, head_id: str) -> bool: ...

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
        """Revoke an unrevoked key; False if it is unknown or already revoked."""

    # -- key challenges ---------------------------------------------------------------------------
    @abstractmethod
    def add_challenge(self, challenge: ChallengeRecord) -> None:
        """Store a newly issued challenge; RecordExistsError if its id is taken."""

    @abstractmethod
    def take_challenge(self, challenge_id: str) -> ChallengeRecord | None:
        """Mark a challenge used and return it as it was before (so `used` says whether an earlier
        registration had taken it), atomically: of two registrations naming one challenge, exactly
        one sees it unused. None if it is unknown."""

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
    def mark_received(self, session_id: str, indices: Iterable[int], data_scale_bits: int) -> SessionRecord | None:
        """Add uploaded ciphertext indices and the chunk's data scale, atomically: concurrent chunk
        uploads must not lose each other's indices. Returns the updated session (None if unknown)."""

    @abstractmethod
    def claim_for_compute(self, session_id: str) -> bool:
        """Move a session that is neither computing nor done to computing (no columns computed, no
        error), atomically; False if it is unknown or already computing or done, so one session is
        never computed twice at once."""

    @abstractmethod
    def add_computed_columns(self, session_id: str, columns: int) -> None:
        """Progress of a running computation (pieces finish in any order)."""

    @abstractmethod
    def complete_session(self, session_id: str, result_blob: str, computed_columns: int) -> None:
        """The computation finished: the session is done and its result is in `result_blob`."""

    @abstractmethod
    def fail_session(self, session_id: str, error: str) -> None:
        """The computation failed; `error` tells the client why."""

    @abstractmethod
    def interrupt_running_sessions(self) -> int:
        """Fail every computing session with INTERRUPTED_ERROR (after a restart nothing computes
        them, and a session must not stay "computing" for ever); returns how many."""

    @abstractmethod
    def delete_session(self, session_id: str) -> bool: ...

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

    # -- lifetime ---------------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...
