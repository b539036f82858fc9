"""The `Prefer` header (RFC 7240): `respond-async` among any preferences, in any case, with or without
a value or parameters, in any of several headers; nothing else asks for an asynchronous answer."""

from __future__ import annotations

import pytest

from provider_server.prefer import prefers_async


@pytest.mark.parametrize(
    "values",
    [
        ["respond-async"],
        ["Respond-Async"],
        ["wait=10, respond-async"],
        ["respond-async; foo=bar"],
        [" return=minimal ,respond-async "],
        ["return=minimal", "respond-async"],
    ],
)
def test_respond_async_is_recognised(values: list[str]) -> None:
    assert prefers_async(values)


@pytest.mark.parametrize("values", [[], [""], ["return=minimal"], ["respond-asynchronously"], ["wait=respond-async"]])
def test_anything_else_is_synchronous(values: list[str]) -> None:
    assert not prefers_async(values)
