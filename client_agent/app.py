"""The client agent daemon: a local REST API over the private alignment and inference flows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from helix_web.access_log import RouteTemplateMiddleware
from helix_web.errors import install_error_handlers
from helix_web.limits import BodyReadTimeoutMiddleware, BodySizeLimitMiddleware
from helix_web.metrics import HttpMetrics, MetricsMiddleware
from helix_web.openapi import AGENT_ERRORS, error_responses
from helix_web.readiness import require_ready
from helix_web.request_id import RequestIdMiddleware
from shared_protocol import PROTOCOL_VERSION
from shared_protocol.messages import ErrorResponse

from .api_models import Health
from .deps import State, require_token
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
    app.state.metrics = HttpMetrics("agent")

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

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        dependencies=[Depends(require_token)],
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            401: {"model": ErrorResponse, "description": "missing or wrong agent token"},
        },
    )
    def metrics(request: Request) -> Response:
        """Prometheus metrics, behind the agent's API token when one is set."""
        return request.app.state.metrics.response()  # type: ignore[no-any-return]

    for router in (alignments.router, classify.router, maps.router):
        app.include_router(router, responses=error_responses(AGENT_ERRORS))
    install_error_handlers(app)

    app.add_middleware(BodyReadTimeoutMiddleware, timeout_seconds=settings.body_read_timeout_seconds)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=16 * 1024 * 1024)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RouteTemplateMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
