"""Canonical hashing of a public text list, so both parties can prove they embed the same texts
in the same order (a different order would silently pair the wrong rows of X and Y)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def corpus_sha256(texts: Sequence[str]) -> str:
    """sha256 over the compact JSON array of the texts (UTF-8, no ASCII escaping)."""
    payload = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
