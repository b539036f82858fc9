"""Prometheus metrics for both daemons: requests by route template and status, latency histograms, and
whatever each daemon adds to its own registry.

Why a registry per application (not prometheus_client's global one): two daemons (or two test apps) in
one process must not share counters, and the house keeps no global mutable state. Why route templates:
a label per raw path would make every key and session id a time series (unbounded, and ids act as
capabilities, so they must not be exported); requests that match no route count under `<unrouted>`.
HE work runs in worker processes, but its timings are observed here, in the server process that owns
the registry, from what the workers return, so the numbers stay right with any number of workers.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

from .access_log import route_template
from .limits import ASGIApp, Message, Receive, Scope, Send

#: Seconds: from sub-millisecond HE replies to minute-long alignments.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class HttpMetrics:
    """The request metrics every daemon exports, in its own registry."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.service = service
        self.requests = Counter(
            "helix_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "helix_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "helix_http_requests_in_flight", "Requests being served", ["service"], registry=self.registry
        )

    def response(self) -> Response:
        """The registry in Prometheus' text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times every HTTP request; the route is known once routing has run, so it is read
    after the application returns."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        status = 500  # what the client sees if the application fails before answering
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        m.in_flight.labels(m.service).inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            m.in_flight.labels(m.service).dec()
            route, method = route_template(scope), scope.get("method", "GET")
            m.requests.labels(m.service, method, route, str(status)).inc()
            m.latency.labels(m.service, method, route).observe(time.perf_counter() - started)
