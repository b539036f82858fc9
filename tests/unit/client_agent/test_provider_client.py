"""Ids become percent-encoded path segments, so none can steer a request to another provider path."""

from __future__ import annotations

import httpx
import pytest

from client_agent.provider_client import segment


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        ("sst2", b"/v1/heads/sst2/texts"),
        ("a/b", b"/v1/heads/a%2Fb/texts"),
        ("..", b"/v1/heads/%2E%2E/texts"),
        (".", b"/v1/heads/%2E/texts"),
        ("a\nb\0", b"/v1/heads/a%0Ab%00/texts"),
        ("x?y#z", b"/v1/heads/x%3Fy%23z/texts"),
    ],
)
def test_segment_keeps_the_request_on_its_path(value: str, raw: bytes) -> None:
    assert httpx.URL(f"https://provider.test/v1/heads/{segment(value)}/texts").raw_path == raw
