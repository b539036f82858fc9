"""Prometheus metrics, for the operator: behind the admin token (labels name heads and routes, and
Prometheus sends a bearer token with `authorization.credentials_file`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from shared_protocol.messages import ErrorResponse

from ..deps import require_admin

router = APIRouter(tags=["operations"], dependencies=[Depends(require_admin)])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: {"model": ErrorResponse, "description": "missing or wrong admin token"},
        403: {"model": ErrorResponse, "description": "admin endpoints are disabled"},
    },
)
def metrics(request: Request) -> Response:
    return request.app.state.metrics.response()  # type: ignore[no-any-return]
