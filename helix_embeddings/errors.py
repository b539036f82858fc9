"""Exceptions raised by remote (API) embedding backends.

Why dedicated types: callers (the client agent, the CLI) must tell "your key is
wrong or missing" (operator action needed, retrying is pointless) apart from
"the service kept failing" (try later), without knowing which SDK is underneath.
"""

from __future__ import annotations


class MissingCredentialsError(ValueError):
    """No API key was found in any of the environment variables a backend reads.

    A ``ValueError`` because it is a configuration problem, like every other
    error :func:`helix_embeddings.load_embedder` raises for a bad spec.
    """


class EmbedderError(RuntimeError):
    """A remote embedding request failed for good."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EmbedderAuthError(EmbedderError):
    """The API rejected the credentials (HTTP 401/403). Retrying cannot help."""


class EmbedderRequestError(EmbedderError):
    """The API rejected a request (e.g. 400) or kept failing after every retry."""
