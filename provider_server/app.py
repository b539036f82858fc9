"""The provider application: routers per resource, state from the lifespan, limits and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from helix_web.access_log import RouteTemplateMiddleware
from helix_web.errors import install_error_handlers
from helix_web.limits import BodyReadTimeoutMiddleware, BodySizeLimitMiddleware
from helix_web.metrics import HttpMetrics, MetricsMiddleware
from helix_web.openapi import PROVIDER_ERRORS, error_responses
from helix_web.request_id import RequestIdMiddleware
from shared_protocol import PROTOCOL_VERSION

from .retention import sweep_periodically
from .routers import (
    admin_corpora,
    admin_gc,
    admin_heads,
    admin_jobs,
    admin_tenants,
    alignments,
    classify,
    corpora,
    heads,
    info,
    keys,
    metrics,
    usage,
)
from .settings import ProviderSettings
from .state import ProviderState


def create_app(settings: ProviderSettings | None = None) -> FastAPI:
    settings = settings or ProviderSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ProviderState.open(settings)
        app.state.helix = state
        await asyncio.gather(run_in_threadpool(state.warm_up), run_in_threadpool(state.embedder))
        state.warmed = True
        if settings.gc_interval_seconds > 0:
            state.tasks.spawn(sweep_periodically(state.sweeper, settings.gc_interval_seconds))
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="HELIX provider",
        version=PROTOCOL_VERSION,
        lifespan=lifespan,
        description="Homomorphic classification heads over secure linear alignment.",
    )
    app.state.metrics = HttpMetrics("provider")
    routers = (
        info,
        usage,
        heads,
        corpora,
        keys,
        alignments,
        classify,
        admin_heads,
        admin_jobs,
        admin_corpora,
        admin_tenants,
        admin_gc,
        metrics,
    )
    for module in routers:
        app.include_router(module.router, responses=error_responses(PROVIDER_ERRORS))
    install_error_handlers(app)
    app.add_middleware(BodyReadTimeoutMiddleware, timeout_seconds=settings.body_read_timeout_seconds)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RouteTemplateMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
