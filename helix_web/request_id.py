"""Request ids: every request carries one from the edge to the access log and on to the next service.

A caller's `X-Request-ID` is kept when it is a plain token (1-128 characters of [A-Za-z0-9._-]), so an
operator can follow one request through the agent's and the provider's logs; anything else (absent,
too long, with spaces or control characters that could forge log lines) is replaced by a fresh id.
The id is echoed on every response, errors included, and is visible to code running for the request
through `current_request_id()` (a context variable: it follows the request into worker threads)."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from .limits import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER_BYTES = HEADER.lower().encode()
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")

_current: ContextVar[str | None] = ContextVar("helix_request_id", default=None)


def valid_request_id(value: str) -> bool:
    return _VALID.fullmatch(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return _current.get()


def request_id_headers() -> dict[str, str]:
    """The header that carries the current request's id to another service (empty outside a request)."""
    rid = _current.get()
    return {HEADER: rid} if rid else {}


def _from_scope(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == _HEADER_BYTES:
            given = bytes(value).decode("latin-1")
            if valid_request_id(given):
                return given
            break
    return new_request_id()


class RequestIdMiddleware:
    """Outermost middleware: picks the id, publishes it for the request, adds it to the response.

    An exception that escapes the application before any response began is answered here with the
    same plain 500 Starlette would send, so that answer carries the id too; the exception is then
    re-raised for the server to log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _from_scope(scope)
        _current.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_BYTES]
                headers.append((_HEADER_BYTES, rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not started:
                body = b"Internal Server Error"
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": body})
            raise


class RequestIdLogFilter(logging.Filter):
    """Gives every log record a `request_id` attribute (`-` outside a request) for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or "-"
        return True
