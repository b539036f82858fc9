"""Request ids: which caller ids are kept, and that every answer carries one (errors included)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from helix_web.request_id import RequestIdLogFilter, RequestIdMiddleware, current_request_id, valid_request_id


@pytest.mark.parametrize("value", ["a", "A.b_c-9", "x" * 128])
def test_plain_tokens_are_valid(value: str) -> None:
    assert valid_request_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "a\nb", "a/b", "\u00fc", "a:b"])
def test_other_values_are_not(value: str) -> None:
    assert not valid_request_id(value)


def _call(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        try:
            await RequestIdMiddleware(app)({"type": "http", "headers": headers}, receive, send)
        except RuntimeError:
            pass

    asyncio.run(run())
    return sent


def _ok_app(seen: list[str | None]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_request_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_valid_id_is_kept_published_and_echoed() -> None:
    seen: list[str | None] = []
    sent = _call(_ok_app(seen), [(b"x-request-id", b"abc-1")])
    assert seen == ["abc-1"]
    assert (b"x-request-id", b"abc-1") in sent[0]["headers"]


def test_an_invalid_id_is_replaced() -> None:
    seen: list[str | None] = []
    sent = _call(_ok_app(seen), [(b"x-request-id", b"a b")])
    rid = seen[0]
    assert rid and rid != "a b" and valid_request_id(rid)
    assert (b"x-request-id", rid.encode()) in sent[0]["headers"]


def test_a_crash_before_the_answer_still_carries_the_id() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    sent = _call(app, [(b"x-request-id", b"crash-1")])
    assert sent[0]["status"] == 500
    assert (b"x-request-id", b"crash-1") in sent[0]["headers"]


def test_log_records_get_the_id_or_a_dash() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert RequestIdLogFilter().filter(record)
    assert record.request_id == "-"
