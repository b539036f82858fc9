"""FastAPI dependencies: application state, admin authentication, key checks."""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from helix_web.errors import ApiError, not_found
from shared_protocol.messages import KeyPurpose

from .db import parse_dt, utcnow
from .state import ProviderState


def get_state(request: Request) -> ProviderState:
    return request.app.state.helix  # type: ignore[no-any-return]


State = Annotated[ProviderState, Depends(get_state)]


def require_admin(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = state.settings.admin_token
    if token is None or not token.get_secret_value():
        raise ApiError(403, "admin_disabled", "admin endpoints are disabled: set HELIX_PROVIDER_ADMIN_TOKEN")
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <admin token>' header")
    if not secrets.compare_digest(authorization[7:].encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "wrong admin token")


def usable_key(state: ProviderState, key_id: str, purpose: KeyPurpose) -> dict[str, Any]:
    """A registered, unrevoked, unexpired key of the right purpose, or a 4xx naming what is wrong."""
    key = state.repo.get_key(key_id)
    if key is None or key["revoked"]:
        raise not_found("key", key_id)
    if parse_dt(key["expires_at"]) <= utcnow():
        raise ApiError(410, "key_expired", f"key {key_id!r} expired at {key['expires_at']}; register a new key")
    if key["purpose"] != purpose.value:
        raise ApiError(403, "wrong_key_purpose", f"key {key_id!r} is registered for {key['purpose']}, not {purpose.value}")
    if key["parameter_set"] not in state.settings.parameter_sets:
        raise ApiError(422, "parameter_set_not_accepted", f"this provider no longer accepts {key['parameter_set']}")
    return key


def expired(ts: str) -> bool:
    return parse_dt(ts) <= utcnow()


def now() -> datetime:
    return utcnow()
