"""The provider's notion of now: timezone-aware UTC, the form every stored timestamp has."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
