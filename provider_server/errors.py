"""The provider's domain errors: what went wrong, as a status, a stable code and a sentence.

Services raise these and never build HTTP responses; they subclass `helix_web.errors.ApiError`, so
the one error handler renders every failure as {"error": code, "detail": sentence}. The code is
part of the API (clients and tests branch on it) and must not change.
"""

from __future__ import annotations

from helix_web.errors import ApiError


class ProviderError(ApiError):
    """Base of the provider's errors; subclasses fix the status."""

    status_code = 500

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(self.status_code, code, detail)


class BadRequest(ProviderError):
    """The request is malformed (say, a frame whose header disagrees with its blobs)."""

    status_code = 400


class Unauthorized(ProviderError):
    """No valid credentials: a missing, malformed, unknown, wrong or revoked API key."""

    status_code = 401


class Forbidden(ProviderError):
    status_code = 403


class NotFound(ProviderError):
    status_code = 404


class Unknown(NotFound):
    """No resource of this kind with this id: the code is `unknown_<kind>`."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"unknown_{kind}", f"no {kind} with id {ident!r}")


class Conflict(ProviderError):
    """The request clashes with the resource's current state (exists already, not ready, ...)."""

    status_code = 409


class Gone(ProviderError):
    """The resource existed but expired."""

    status_code = 410


class Unprocessable(ProviderError):
    """Well-formed but unacceptable input: bad ciphertexts, limits exceeded, inconsistent values."""

    status_code = 422


class TooManyRequests(ProviderError):
    """A tenant's quota or rate limit refused the request (nothing was charged); `Retry-After` says
    in whole seconds when trying again can succeed."""

    status_code = 429

    def __init__(self, code: str, detail: str, retry_after_seconds: int) -> None:
        super().__init__(code, detail)
        self.retry_after_seconds = max(1, retry_after_seconds)
        self.headers = {"Retry-After": str(self.retry_after_seconds)}


class Unavailable(ProviderError):
    """The provider cannot serve the request right now (its HE workers keep dying)."""

    status_code = 503


class TimedOut(ProviderError):
    """Work the provider stopped because it ran past its time limit (a head training); nothing of it
    was stored."""

    status_code = 504


class Failed(ProviderError):
    """Work that failed inside the provider (a training process that crashed or raised)."""

    status_code = 500


class StorageFull(ProviderError):
    """The provider's disk (or its quota, or a file-size limit) refused a write; nothing was stored."""

    status_code = 507
