"""The client agent daemon: a local REST API over the private alignment and inference flows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from helix_web.errors import install_error_handlers
from helix_web.limits import BodySizeLimitMiddleware
from shared_protocol import PROTOCOL_VERSION

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

    app.include_router(alignments.router)
    app.include_router(classify.router)
    app.include_router(maps.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=16 * 1024 * 1024)
    return app
