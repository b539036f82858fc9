"""How the provider's refusals reach the agent's own callers: with the provider's status and code when
it is the caller's request that is wrong (an unknown head, a bad corpus id); as 429 with the
provider's Retry-After when the tenant's quota or rate limit refused it; as 502 `provider_<code>`
when the provider refused this agent's credentials (401, 403: a wrong or revoked API key, a disabled
tenant: the agent's configuration, not the caller's request, is wrong), and when the provider itself
failed or answered something other than success or a refusal; as 503 when it did not answer at all.
One place, so every router answers the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from helix_web.errors import ApiError

from .provider_client import ProviderError, ProviderUnreachable


class RetryLater(ApiError):
    """503 with a Retry-After header: the provider is away, the caller may try again later."""

    def __init__(self, code: str, detail: str, retry_after: int) -> None:
        super().__init__(503, code, detail, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def from_provider(exc: ProviderError) -> ApiError:
    if isinstance(exc, ProviderUnreachable):
        return RetryLater(exc.code, exc.detail, exc.retry_seconds)
    if exc.status in (401, 403):
        return ApiError(502, f"provider_{exc.code}", f"the provider refused this agent's credentials: {exc.detail}")
    if exc.status == 429:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return ApiError(429, exc.code, exc.detail, headers)
    if 400 <= exc.status < 500:
        return ApiError(exc.status, exc.code, exc.detail)
    return ApiError(502, exc.code, f"the provider answered {exc.status}: {exc.detail}")


@contextmanager
def provider_errors_as_api_errors() -> Iterator[None]:
    """Re-raise a ProviderError from the block as the agent's ApiError."""
    try:
        yield
    except ProviderError as exc:
        raise from_provider(exc) from None
