"""How the provider's refusals reach the agent's callers: credentials refused -> 502 naming the
provider's code, quota or rate limit -> 429 with the provider's Retry-After."""

from __future__ import annotations

from client_agent.api_errors import from_provider
from client_agent.provider_client import ProviderError


def test_refused_credentials_are_the_agents_fault_502() -> None:
    for status, code in ((401, "api_key_revoked"), (401, "invalid_api_key"), (403, "tenant_disabled")):
        err = from_provider(ProviderError(status, code, "no"))
        assert (err.status, err.code) == (502, f"provider_{code}")
        assert "credentials" in err.detail


def test_a_provider_429_passes_its_retry_after_on() -> None:
    err = from_provider(ProviderError(429, "query_quota_exceeded", "quota", retry_after="3600"))
    assert (err.status, err.code, err.headers) == (429, "query_quota_exceeded", {"Retry-After": "3600"})
    bare = from_provider(ProviderError(429, "rate_limited", "slow down"))
    assert bare.status == 429 and bare.headers == {}


def test_other_refusals_keep_their_status() -> None:
    err = from_provider(ProviderError(404, "unknown_head", "no head"))
    assert (err.status, err.code) == (404, "unknown_head")
    assert from_provider(ProviderError(500, "error", "boom")).status == 502
