"""The provider's state store, chosen by database URL (`open_store`)."""

from __future__ import annotations

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


def open_store(url: str) -> Store:
    """The Store for a database URL, its schema brought up to date: `sqlite:///<path>` (a relative path
    after the three slashes, an absolute one after four) or `postgresql://user[:password]@host[:port]/db`
    (also spelled `postgresql+psycopg://`). ValueError for anything else."""
    from .engine import normalise_url
    from .sql import SqlStore

    normalise_url(url)  # refuses an unsupported URL before anything is imported or opened
    return SqlStore(url)
