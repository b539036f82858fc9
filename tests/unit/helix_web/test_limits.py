"""The body read timeout on a real asyncio loop: a body that stops arriving gets one 408 that closes
the connection, whatever the application made of the interrupted read; a complete body passes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helix_web.limits import BodyReadTimeoutMiddleware


def _run(app: Any, messages: list[dict[str, Any]], timeout: float = 0.2) -> list[dict[str, Any]]:
    """Deliver `messages`, then never anything again (a client that stopped sending)."""
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await asyncio.wait_for(BodyReadTimeoutMiddleware(app, timeout)({"type": "http"}, receive, send), 10)

    asyncio.run(run())
    return sent


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


def _echo_app(swallow: bool) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            body = await _read_body(receive)
            status = 200
        except Exception:
            if not swallow:
                raise
            body, status = b"parse error", 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def test_a_stalled_body_gets_408_and_close() -> None:
    for swallow in (False, True):
        sent = _run(_echo_app(swallow), [{"type": "http.request", "body": b"{", "more_body": True}])
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 408
        assert (b"connection", b"close") in sent[0]["headers"]
        assert json.loads(sent[1]["body"])["error"] == "body_read_timeout"


def test_a_complete_body_passes() -> None:
    sent = _run(
        _echo_app(False),
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"c", "more_body": False},
        ],
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"abc"


def test_after_the_body_receive_is_not_timed() -> None:
    """Once the body is complete, waiting for a disconnect may take as long as the answer does."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _read_body(receive)
        try:
            await asyncio.wait_for(receive(), 0.5)
        except TimeoutError:
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = _run(app, [{"type": "http.request", "body": b"", "more_body": False}], timeout=0.1)
    assert sent[0]["status"] == 204
