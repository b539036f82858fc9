"""The client agent daemon: a local REST API over the private alignment and inference flows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from helix_web.errors import error_body, install_error_handlers
from helix_web.limits import BodyReadTimeoutMiddleware, BodySizeLimitMiddleware
from helix_web.readiness import require_ready
from helix_web.request_id import RequestIdMiddleware
from shared_protocol import PROTOCOL_VERSION
from shared_protocol.messages import ErrorResponse

from .api_errors import RetryLater
from .api_models import Health
from .deps import State
from .routers import alignments, classify, maps
from .settings import ClientSettings
from .state import ClientState


def create_app(settings: ClientSettings | None = None) -> FastAPI:
    settings = settings or ClientSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ClientState.open(settings)
        app.state.helix = state
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="HELIX client agent", version=PROTOCOL_VERSION, lifespan=lifespan)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz(state: State) -> Health:
        emb = state.loaded_embedder
        return Health(status="ok", embedder=emb.model_id if emb else None, provider_url=state.settings.provider_url)

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"model": ErrorResponse, "description": "not ready, with the reason"}},
    )
    def readyz(state: State) -> dict[str, str]:
        """Readiness: 200 while the data directory is writable and the provider is ready, else 503
        `not_ready` naming the problem (the provider's state is reused for a few seconds)."""
        return require_ready(state.readiness())

    app.include_router(alignments.router)
    app.include_router(classify.router)
    app.include_router(maps.router)
    install_error_handlers(app)

    @app.exception_handler(RetryLater)
    async def _retry_later(_: Request, exc: RetryLater) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.detail), status_code=exc.status, headers={"Retry-After": str(exc.retry_after)}
        )

    app.add_middleware(BodyReadTimeoutMiddleware, timeout_seconds=settings.body_read_timeout_seconds)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=16 * 1024 * 1024)
    app.add_middleware(RequestIdMiddleware)
    return app
