"""Bounded retries with exponential backoff for remote embedding calls.

Why our own loop instead of each SDK's: the three SDKs retry differently
(OpenAI and Cohere twice by default, google-genai not at all), so HELIX
disables theirs and applies one policy everywhere: retry 429, 408 and 5xx
responses and connection errors; never retry 401/403 (raise
:class:`~helix_embeddings.errors.EmbedderAuthError`) or other 4xx (raise
:class:`~helix_embeddings.errors.EmbedderRequestError`); honour a server's
``Retry-After`` / ``retry-after-ms`` header when present, else back off
exponentially with jitter.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import EmbedderAuthError, EmbedderRequestError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Verdict(enum.Enum):
    """What to do about one failed call."""

    RETRY = "retry"
    AUTH = "auth"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """A backend's reading of an SDK exception, in SDK-independent terms."""

    verdict: Verdict
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying.

    Attributes:
        max_attempts: Total calls including the first (so ``1`` = no retry).
        base_delay: First backoff in seconds; doubles per attempt.
        max_delay: Cap on one computed backoff.
        max_retry_after: Cap on a server-requested wait (a bogus ``Retry-After: 86400``
            must not hang an embedding run for a day; we give up instead).
        jitter: Random extra fraction of each computed backoff, to de-synchronise clients.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    jitter: float = 0.25

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based) when the server named none."""
        delay = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        return float(delay * (1.0 + self.jitter * random.random()))


def verdict_for_status(status: int) -> Verdict:
    """HTTP status -> verdict: 401/403 auth, 408/429/5xx transient, anything else fatal."""
    if status in (401, 403):
        return Verdict.AUTH
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.FATAL


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI's extension) or ``Retry-After``.

    ``Retry-After`` may be delta-seconds or an HTTP date (RFC 9110 10.2.3).
    Returns None when absent or unparseable.
    """
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def call_with_retries(
    fn: Callable[[], T],
    classify: Callable[[BaseException], Failure | None],
    policy: RetryPolicy,
    what: str,
    auth_hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, a non-retryable failure occurs, or attempts run out.

    Args:
        fn: The request.
        classify: Maps an exception to a :class:`Failure`; ``None`` means "not an
            API/transport error" and the exception propagates unchanged (a bug
            should surface as itself, not as an API error).
        policy: Attempt and delay limits.
        what: Names the call in messages (e.g. ``"openai:text-embedding-3-small"``).
        auth_hint: Appended to the auth error message (which env var holds the key).
        sleep: Injected for tests.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            status = f"HTTP {failure.status}" if failure.status is not None else type(exc).__name__
            detail = f": {failure.detail}" if failure.detail else ""
            if failure.verdict is Verdict.AUTH:
                raise EmbedderAuthError(
                    f"{what}: authentication failed ({status}){detail}. {auth_hint}".strip(), failure.status
                ) from exc
            if failure.verdict is Verdict.FATAL:
                raise EmbedderRequestError(f"{what}: request rejected ({status}){detail}", failure.status) from exc
            if attempt >= policy.max_attempts:
                raise EmbedderRequestError(
                    f"{what}: still failing after {attempt} attempts (last: {status}){detail}", failure.status
                ) from exc
            if failure.retry_after is not None:
                if failure.retry_after > policy.max_retry_after:
                    raise EmbedderRequestError(
                        f"{what}: server asked to retry after {failure.retry_after:.0f} s "
                        f"(> {policy.max_retry_after:.0f} s limit) ({status}){detail}",
                        failure.status,
                    ) from exc
                delay = failure.retry_after
            else:
                delay = policy.backoff(attempt)
            log.warning("%s: %s, retry %d/%d in %.2f s", what, status, attempt, policy.max_attempts - 1, delay)
            sleep(delay)
