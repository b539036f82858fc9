"""The `Prefer` request header (RFC 7240): does the client prefer an asynchronous answer?"""

from __future__ import annotations

from collections.abc import Iterable

RESPOND_ASYNC = "respond-async"


def prefers_async(values: Iterable[str]) -> bool:
    """True if any `Prefer` header lists `respond-async`. Preferences are comma-separated, each a token
    with an optional `=value` and `;parameters`; tokens are case-insensitive, unknown ones are ignored."""
    for value in values:
        for preference in value.split(","):
            token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token == RESPOND_ASYNC:
                return True
    return False
