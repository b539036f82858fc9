"""What the OpenAPI documents declare beyond FastAPI's defaults: every error status an endpoint can
answer, with the one error schema the daemons really send, and the binary bodies of framed endpoints.

Why: clients generated from the document (and fuzzers checking conformance) must see the real answers.
FastAPI's default 422 schema (`HTTPValidationError`) is not what the daemons send (`ErrorResponse`), and
it does not know that a body read from the raw request is a binary frame."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared_protocol.messages import ErrorResponse

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "malformed request (a frame, JSON or parameter that cannot be read)",
    401: "missing, wrong or revoked credentials",
    403: "the credentials are valid but not allowed here (disabled tenant, admin disabled)",
    404: "unknown id (or one that belongs to someone else)",
    408: "the request body did not arrive in time",
    409: "conflicts with the current state (a name in use, a session in the wrong state)",
    410: "gone (an expired key or session)",
    413: "the request or one of its parts is larger than the limit",
    415: "the body has the wrong media type",
    422: "well-formed but invalid (wrong parameters, a ciphertext or key that fails validation)",
    429: "a quota or rate limit is exhausted; Retry-After says when to come back",
    502: "an upstream service answered with an error",
    503: "not ready or temporarily unavailable; Retry-After when known",
    504: "an upstream service did not answer in time",
    507: "the server's storage is full",
}

#: What every provider endpoint may answer besides its success.
PROVIDER_ERRORS = (400, 401, 403, 404, 408, 409, 410, 413, 415, 422, 429, 503, 507)
#: What every agent endpoint may answer besides its success (the provider's refusals arrive as 502/503).
AGENT_ERRORS = (400, 401, 404, 408, 409, 413, 415, 422, 429, 502, 503, 504, 507)


def error_responses(codes: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: each status with the daemons' error schema."""
    return {code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def binary_body(media_type: str, description: str) -> dict[str, Any]:
    """`openapi_extra=` for an endpoint that reads its body itself: a required binary body."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
        }
    }
