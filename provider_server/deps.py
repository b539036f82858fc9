"""FastAPI dependencies: the application state, admin authentication, and one service per room,
built per request from the state's long-lived parts (constructor injection, no globals).

The dependencies are `async def` although none of them awaits: FastAPI runs a plain `def` dependency in its
thread pool, one thread hop each (seven on a classify), which cost more than the work they do (building a
service object, one indexed Store read for the API key)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from helix_web.errors import ApiError, bearer_token

from .services.alignment import AlignmentService
from .services.audit import AuditLog
from .services.catalog import CatalogService
from .services.inference import InferenceService
from .services.keys import KeyService
from .services.metering import Metering
from .services.tenants import TenantService
from .services.training_jobs import TrainingJobs
from .state import ProviderState
from .store import TenantRecord


async def get_state(request: Request) -> ProviderState:
    return request.app.state.helix  # type: ignore[no-any-return]


State = Annotated[ProviderState, Depends(get_state)]


async def require_admin(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = state.settings.admin_token
    if token is None or not token.get_secret_value():
        raise ApiError(403, "admin_disabled", "admin endpoints are disabled: set HELIX_PROVIDER_ADMIN_TOKEN")
    given = bearer_token(authorization)
    if given is None:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <admin token>' header")
    if not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "wrong admin token")


async def get_audit(state: State) -> AuditLog:
    return AuditLog(state.store)


async def get_metering(state: State) -> Metering:
    return Metering(state.store, state.settings)


Audit = Annotated[AuditLog, Depends(get_audit)]
Meter = Annotated[Metering, Depends(get_metering)]


async def get_tenants(state: State, audit: Audit) -> TenantService:
    return TenantService(state.store, audit)


Tenants = Annotated[TenantService, Depends(get_tenants)]


async def require_tenant(tenants: Tenants, authorization: Annotated[str | None, Header()] = None) -> TenantRecord:
    """The tenant of the request's API key: 401 without a live key, 403 for a disabled tenant."""
    return tenants.authenticate(authorization)


Tenant = Annotated[TenantRecord, Depends(require_tenant)]


async def get_catalog(state: State) -> CatalogService:
    return CatalogService(state.store, state.blobs, state.embedder, state.settings)


async def get_keys(state: State, meter: Meter, audit: Audit) -> KeyService:
    return KeyService(state.store, state.blobs, state.settings, meter, audit)


async def get_inference(
    state: State, keys: Annotated[KeyService, Depends(get_keys)], meter: Meter, audit: Audit
) -> InferenceService:
    return InferenceService(state.store, state.blobs, state.settings, keys, state.pool, meter, audit)


async def get_alignments(
    state: State, keys: Annotated[KeyService, Depends(get_keys)], meter: Meter, audit: Audit
) -> AlignmentService:
    return AlignmentService(
        state.store,
        state.blobs,
        state.settings,
        keys,
        state.alignment_pool,
        state.tasks,
        meter,
        audit,
        state.shard_executor,
    )


def get_training_jobs(state: State) -> TrainingJobs:
    return state.jobs


Catalog = Annotated[CatalogService, Depends(get_catalog)]
Jobs = Annotated[TrainingJobs, Depends(get_training_jobs)]
Keys = Annotated[KeyService, Depends(get_keys)]
Inference = Annotated[InferenceService, Depends(get_inference)]
Alignments = Annotated[AlignmentService, Depends(get_alignments)]
