"""Galois key registration against the real provider: alignment keys carry exactly the packing
tree's evaluation keys, validated against the provider's own pinned context; anything else is a
clear 4xx that leaves no trace (no key row, no stored blob)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenseal.sealapi as seal
from helix_it_helpers import assert_api_error, fresh_challenge

from helix_he.context import save_to_bytes
from helix_he.keys import MAX_GALOIS_KEY_BYTES, ClientKeys
from helix_he.packing import trace_galois_elements
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import AlignmentCreate, KeyRegistrationHeader

PSET = "ckks-n8192-q200"
OTHER_PSET = "ckks-n16384-q200"
FRAME = {"content-type": FRAME_MEDIA_TYPE}
CLIENT = "pytest-galois"


def stored_state(provider: Any) -> tuple[list[tuple[Any, ...]], list[str]]:
    conn = sqlite3.connect(f"file:{provider.db_path}?mode=ro", uri=True)
    try:
        rows = sorted(conn.execute("SELECT * FROM keys").fetchall(), key=repr)
    finally:
        conn.close()
    root = Path(provider.data_dir) / "blobs"
    return rows, sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def refused(provider: Any, send: Callable[[], httpx.Response], status: int, code: str, *words: str) -> None:
    before = stored_state(provider)
    assert_api_error(send(), status, code, *words)
    assert stored_state(provider) == before, "a refused registration stored something"


@pytest.fixture(scope="module")
def keys() -> ClientKeys:
    return ClientKeys.generate(PSET)


Blobs = list[bytes] | Callable[[bytes], list[bytes]]


def post(provider: Any, header: dict[str, Any], blobs: Blobs) -> Callable[[], httpx.Response]:
    """A registration that takes a fresh challenge when it is sent; `blobs` may be built on its seed."""

    def send() -> httpx.Response:
        challenge_id, seed = fresh_challenge(provider.http)
        parts = blobs(seed) if callable(blobs) else blobs
        frame = encode_frame(KeyRegistrationHeader.model_validate(dict(header, challenge_id=challenge_id)), parts)
        return provider.http.post("/v1/keys", content=frame, headers=FRAME)

    return send


def test_alignment_key_with_galois_keys_is_registered(provider: Any, keys: ClientKeys) -> None:
    elements = trace_galois_elements(keys.he.n, 4)
    sizes: list[int] = []

    def blobs(seed: bytes) -> list[bytes]:
        sizes.append(len(keys.galois_key_bytes(4, seed)))
        return [keys.public_key_bytes(seed), keys.galois_key_bytes(4, seed)]

    resp = post(
        provider,
        {"client_name": CLIENT, "purpose": "alignment", "parameter_set": PSET, "galois_elements": elements},
        blobs,
    )()
    assert 0 < sizes[0] < 8 * 1024 * 1024  # full form: the uniform halves are the provider's, not SEAL's seeds
    assert resp.status_code == 201, resp.text
    assert resp.json()["galois_elements"] == elements
    assert provider.http.get(f"/v1/keys/{resp.json()['key_id']}").json()["galois_elements"] == elements
    provider.http.delete(f"/v1/keys/{resp.json()['key_id']}")


def test_bad_galois_keys_are_refused(provider: Any, keys: ClientKeys) -> None:
    base = {"client_name": CLIENT, "purpose": "alignment", "parameter_set": PSET}
    four = trace_galois_elements(keys.he.n, 4)
    good = keys.galois_key_bytes(4, bytes(32))  # Galois keys built on some other seed than the challenge's

    def with_pk(galois: bytes) -> Callable[[bytes], list[bytes]]:
        """A public key on the challenge's seed (it passes) and the given Galois keys."""
        return lambda seed: [keys.public_key_bytes(seed), galois]

    # Malformed and truncated buffers, and keys of another parameter set.
    refused(
        provider,
        post(provider, dict(base, galois_elements=four), with_pk(os.urandom(4096))),
        422,
        "invalid_galois_keys",
        "SEAL header",
    )
    refused(
        provider,
        post(provider, dict(base, galois_elements=four), with_pk(good[:-100])),
        422,
        "invalid_galois_keys",
        "truncated",
    )
    other = ClientKeys.generate(OTHER_PSET)
    refused(
        provider,
        post(provider, dict(base, galois_elements=four), with_pk(other.galois_key_bytes(4))),
        422,
        "invalid_galois_keys",
        PSET,
    )
    pk = keys.public_key_bytes()
    # Keys of this parameter set but for another secret key still load; they simply would not
    # decrypt to anything useful for the client, so only structure is checked (the client's loss).
    # The element set: not the trace tower, or keys that do not match what the header announces.
    refused(
        provider,
        post(provider, dict(base, galois_elements=[3, 5]), [pk, good]),
        422,
        "invalid_galois_elements",
        "1 + N/2^i",
    )
    refused(
        provider, post(provider, dict(base, galois_elements=four[::-1]), [pk, good]), 422, "invalid_galois_elements"
    )
    refused(
        provider,
        post(provider, dict(base, galois_elements=trace_galois_elements(keys.he.n, 3)), with_pk(good)),
        422,
        "invalid_galois_keys",
        "do not match",
    )
    extra = seal.KeyGenerator(keys.he.context, keys.secret_key).create_galois_keys(four[:3] + [3])
    refused(
        provider,
        post(provider, dict(base, galois_elements=four[:3]), with_pk(save_to_bytes(extra))),
        422,
        "invalid_galois_keys",
        "do not match",
    )
    # Wrong blob counts, inference keys with Galois keys, alignment keys without.
    refused(provider, post(provider, dict(base, galois_elements=four), [pk]), 400, "malformed_frame", "two blobs")
    refused(
        provider,
        post(provider, dict(base, purpose="inference", galois_elements=four), [pk, good]),
        422,
        "invalid_galois_elements",
        "inference",
    )
    refused(provider, post(provider, base, [pk]), 422, "invalid_galois_elements")
    # Oversized: rejected by the frame limit before SEAL sees it.
    refused(
        provider,
        post(provider, dict(base, galois_elements=four), [pk, good + b"\0" * (MAX_GALOIS_KEY_BYTES + 1 - len(good))]),
        400,
        "malformed_frame",
    )


def test_alignment_needs_the_key_to_carry_galois_keys(provider: Any, keys: ClientKeys) -> None:
    """An inference key cannot be used for alignment (wrong purpose); an alignment key always
    carries Galois keys since registration refuses one without."""
    resp = post(
        provider,
        {"client_name": CLIENT, "purpose": "inference", "parameter_set": PSET},
        lambda seed: [keys.public_key_bytes(seed)],
    )()
    assert resp.status_code == 201, resp.text
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    body = AlignmentCreate(
        head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=resp.json()["key_id"], feature_dim=8
    )
    assert_api_error(provider.http.post("/v1/alignments", json=body.model_dump(mode="json")), 403, "wrong_key_purpose")
