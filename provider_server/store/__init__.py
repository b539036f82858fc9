"""The provider's state store, chosen by database URL (`open_store`)."""

from __future__ import annotations

from pathlib import Path

from .base import INTERRUPTED_ERROR, JOB_INTERRUPTED_ERROR, RecordExistsError, Store
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
    TrainingReport,
)

__all__ = [
    "INTERRUPTED_ERROR",
    "JOB_INTERRUPTED_ERROR",
    "ApiKeyRecord",
    "AuditRecord",
    "Bucket",
    "ChallengeRecord",
    "Charge",
    "CorpusRecord",
    "Counter",
    "HeadRecord",
    "JobRecord",
    "KeyRecord",
    "Quotas",
    "RecordExistsError",
    "Refusal",
    "SessionRecord",
    "Store",
    "TenantRecord",
    "TrainingReport",
    "open_store",
]

SQLITE_PREFIX = "sqlite:///"


def open_store(url: str) -> Store:
    """The Store for a database URL; `sqlite:///<path>` is built in (a relative path after the three
    slashes, an absolute one after four)."""
    if url.startswith(SQLITE_PREFIX):
        from .sqlite import SqliteStore

        return SqliteStore(Path(url[len(SQLITE_PREFIX) :]))
    raise ValueError(f"unsupported database URL {url!r}: only sqlite:///<path> is built in")
