"""API keys: `hx_<key id>_<secret>`, the secret 256 random bits, only its SHA-256 stored.

Why a plain SHA-256 and not a password hash (bcrypt, scrypt, Argon2): those are slow on purpose so
that guessing a low-entropy password from its hash is expensive. A secret of 256 uniformly random
bits cannot be guessed whatever the hash costs, so a fast hash loses nothing, and it keeps every
authenticated request cheap. The key id in front lets the provider find the one row to compare
with; the comparison is in constant time (`hmac.compare_digest`), so its timing does not tell how
much of a guessed secret was right."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "hx"
SECRET_BYTES = 32  # 256 bits
_FORMAT = re.compile(r"hx_([0-9a-f]{16})_([0-9a-f]{64})")


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    secret_sha256: str
    api_key: str  # shown once, to the admin who created it


def new_api_key() -> NewApiKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_hex(SECRET_BYTES)
    return NewApiKey(key_id=key_id, secret_sha256=secret_hash(secret), api_key=f"{PREFIX}_{key_id}_{secret}")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(value: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed API key, else None."""
    match = _FORMAT.fullmatch(value)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(secret_hash(secret).encode(), stored_sha256.encode())
