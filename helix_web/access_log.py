"""Access log lines name the route template (`/v1/alignments/{session_id}`), never the raw path.

Why: key, session and challenge ids are capabilities within a tenant, and a raw path carries them
(and a query string may carry anything); an access log is read by more people, and kept longer, than
the database. The template still tells an operator which endpoint was called. A request that matched
no route (a 404 of the router, or refused before routing) is logged as `<unrouted>`.

The middleware notes the matched route when the response starts (routing has happened by then), in a
context variable that uvicorn's access logger, called from inside that same `send`, can read; the
filter puts it in place of the path argument of uvicorn's access record."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from .limits import ASGIApp, Message, Receive, Scope, Send

UNROUTED = "<unrouted>"

_template: ContextVar[str | None] = ContextVar("helix_route_template", default=None)


def route_template(scope: Scope) -> str:
    """The path template of the route that served `scope`, or UNROUTED."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNROUTED


class RouteTemplateMiddleware:
    """Outermost but for the request id: records the served route's template for the access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _template.set(UNROUTED)

        async def send_noting_route(message: Message) -> None:
            if message["type"] == "http.response.start":
                _template.set(route_template(scope))
            await send(message)

        await self.app(scope, receive, send_noting_route)


class RouteTemplateLogFilter(logging.Filter):
    """Replaces the path in uvicorn's access record (client, method, path, version, status) by the
    route template; other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) == 5:
            record.args = (args[0], args[1], _template.get() or UNROUTED, args[3], args[4])
        return True
