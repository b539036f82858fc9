"""FastAPI dependencies of the agent: the application state and the optional bearer token. `async def`: FastAPI
would run a plain `def` dependency in its thread pool, a hop per request that costs more than the check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from helix_web.errors import ApiError, bearer_token

from .state import ClientState


async def get_state(request: Request) -> ClientState:
    return request.app.state.helix  # type: ignore[no-any-return]


State = Annotated[ClientState, Depends(get_state)]


async def require_token(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = state.settings.api_token
    if token is None:
        return
    given = bearer_token(authorization)
    if given is None or not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "missing or wrong 'Authorization: Bearer <agent token>'")
