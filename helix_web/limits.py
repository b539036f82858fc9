"""Request body limits: size, enforced before the body is read, and time, while it is read.

Starlette has no request-size limit: without this a client could stream gigabytes into memory. The
size middleware rejects an over-long Content-Length at once (413) and, for chunked bodies, counts bytes
as they arrive and stops at the limit.

Uvicorn has no body read timeout either (its keep-alive timeout only runs between requests): a client
that announces more bytes than it sends would hold its connection and the request's task forever. The
timeout middleware answers 408 and closes the connection when the next part of a body does not arrive
in time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodyReadTimeout(Exception):
    pass


async def _send_error(send: Send, status: int, code: str, detail: str) -> None:
    """A JSON error answer that also closes the connection (the rest of the body is never read)."""
    body = json.dumps(error_body(code, detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send, detail: str) -> None:
        await _send_error(send, 413, "request_too_large", detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0 or length > self.max_bytes:
                    await self._reject(
                        send,
                        f"request body of {value.decode(errors='replace')} bytes exceeds the limit of {self.max_bytes}",
                    )
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, f"request body exceeds the limit of {self.max_bytes} bytes")


class BodyReadTimeoutMiddleware:
    """Each part of a request body must arrive within `timeout_seconds` of asking for it.

    On a timeout the waiting `receive` raises; whatever the application makes of that (it may pass the
    exception on, or turn it into its own error answer) is replaced by one 408 `body_read_timeout` that
    closes the connection. Once the body is complete, `receive` is passed through untouched (it then
    only reports a disconnect, which may rightly take as long as the response)."""

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout_seconds <= 0:
            await self.app(scope, receive, send)
            return
        body_done = False
        timed_out = False
        started = False
        detail = f"the request body did not arrive within {self.timeout_seconds:g} seconds"

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_seconds)
            except TimeoutError:
                timed_out = True
                raise BodyReadTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 408, "body_read_timeout", detail)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise
            if not started:
                await _send_error(send, 408, "body_read_timeout", detail)
