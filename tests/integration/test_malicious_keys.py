"""A malicious client against the real provider: crafted public and Galois keys, keys built on
another challenge's seed, reused, expired, unknown and missing challenges. Each is refused with its
documented status and code, and nothing is stored (no key row, no blob).

Why it matters: the provider re-randomises every reply with the client's public key. A key whose
uniform half is 0 or a constant once made every reply (client's seed polynomial) x (weights) plus
small noise, and 512 copies of one query recovered W exactly. The last test plays that attack
against a key the provider accepted."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tenseal.sealapi as seal
from helix_it_helpers import assert_api_error, fresh_challenge

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.context import load_from_bytes
from helix_he.keys import ClientKeys
from helix_he.linear_head import encrypt_queries
from helix_he.modmath import centered, mulmod, submod
from helix_he.packing import LinearHeadLayout, trace_galois_elements
from helix_he.rlwe import ReplyCiphertext
from helix_he.seeded_keys import PUBLIC_KEY_SLOT, KeyBlob, key_primes, uniform_half
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import ClassifyHeader, KeyRegistrationHeader

PSET = "ckks-n8192-q200"
CLIENT = "pytest-malicious"
FRAME = {"content-type": FRAME_MEDIA_TYPE}
STRIDE_BITS = 3
INFERENCE = {"client_name": CLIENT, "purpose": "inference", "parameter_set": PSET}


@pytest.fixture(scope="module")
def keys() -> ClientKeys:
    return ClientKeys.generate(PSET)


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


def stored(provider: Any) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The key rows and the blob files: what a registration would leave behind."""
    conn = sqlite3.connect(f"file:{provider.db_path}?mode=ro", uri=True)
    try:
        rows = sorted(conn.execute("SELECT * FROM keys").fetchall(), key=repr)
    finally:
        conn.close()
    root = Path(provider.data_dir) / "blobs"
    return rows, sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def challenge_used(provider: Any, challenge_id: str) -> bool:
    conn = sqlite3.connect(f"file:{provider.db_path}?mode=ro", uri=True)
    try:
        (used,) = conn.execute("SELECT used FROM challenges WHERE challenge_id = ?", (challenge_id,)).fetchone()
    finally:
        conn.close()
    return bool(used)


def send(provider: Any, header: dict[str, Any], blobs: list[bytes]) -> httpx.Response:
    frame = encode_frame(KeyRegistrationHeader.model_validate(header), blobs)
    return provider.http.post("/v1/keys", content=frame, headers=FRAME)


def refused(provider: Any, do: Callable[[], httpx.Response], status: int, code: str, *words: str) -> None:
    before = stored(provider)
    assert_api_error(do(), status, code, *words)
    assert stored(provider) == before, "a refused registration stored something"


def forged_public_key(keys: ClientKeys, seed: bytes, change: Callable[[np.ndarray], np.ndarray]) -> bytes:
    """The honest public key on `seed`, its (2, key primes, N) data replaced by `change(data)`, in a
    serialization SEAL itself accepts (the provider's SEAL validation is not what refuses it)."""
    pk = seal.PublicKey()
    load_from_bytes(pk, keys.he.context, keys.public_key_bytes(seed))
    blob = KeyBlob.of_public_key(keys.he, pk)
    blob.write(PUBLIC_KEY_SLOT, change(blob.data(PUBLIC_KEY_SLOT)))
    raw = blob.to_bytes()
    load_from_bytes(seal.PublicKey(), keys.he.context, raw)
    return raw


def with_uniform_half(p1: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def change(data: np.ndarray) -> np.ndarray:
        data[1] = p1
        return data

    return change


def constant(keys: ClientKeys, c: int) -> np.ndarray:
    """The NTT values of the constant polynomial c (a constant evaluates to itself everywhere)."""
    return np.array([[c % q] * keys.he.n for q in key_primes(keys.he)], dtype=np.uint64)


# --------------------------------------------------------------------------- crafted public keys


def _sparse(keys: ClientKeys, seed: bytes) -> bytes:
    """16 evaluations of the expansion, every other one 0."""
    a = uniform_half(keys.he, seed, PUBLIC_KEY_SLOT)
    a[:, 16:] = 0
    return forged_public_key(keys, seed, with_uniform_half(a))


def _zero_at_q0(keys: ClientKeys, seed: bytes) -> bytes:
    """Right at every prime but q0, the one prime replies are computed at."""
    a = uniform_half(keys.he, seed, PUBLIC_KEY_SLOT)
    a[0] = 0
    return forged_public_key(keys, seed, with_uniform_half(a))


def _times_x(keys: ClientKeys, seed: bytes) -> bytes:
    """The expansion times X at the data primes: uniform too, but not the polynomial the provider chose."""
    he = keys.he
    a = uniform_half(he, seed, PUBLIC_KEY_SLOT)
    x = np.zeros(he.n, dtype=np.int64)
    x[1] = 1
    x_ntt = he.coeffs_to_ntt(x, he.levels[0])
    for i, q in enumerate(he.levels[0].primes):
        a[i] = mulmod(a[i], x_ntt[i], q)
    return forged_public_key(keys, seed, with_uniform_half(a))


CRAFTED_PUBLIC_KEYS: dict[str, Callable[[ClientKeys, bytes], bytes]] = {
    "zero key": lambda keys, seed: forged_public_key(keys, seed, np.zeros_like),
    "constant second half": lambda keys, seed: forged_public_key(
        keys, seed, with_uniform_half(constant(keys, (1 << 40) + 12345))
    ),
    "second half 1": lambda keys, seed: forged_public_key(keys, seed, with_uniform_half(constant(keys, 1))),
    "sparse second half": _sparse,
    "second half zero at q0": _zero_at_q0,
    "expansion times X": _times_x,
    "a Galois slot's expansion": lambda keys, seed: forged_public_key(
        keys, seed, with_uniform_half(uniform_half(keys.he, seed, (8193, 0)))
    ),
    "SEAL's own random half": lambda keys, seed: keys.public_key_bytes(),
}


@pytest.mark.parametrize("name", sorted(CRAFTED_PUBLIC_KEYS))
def test_a_crafted_public_key_is_refused_and_spends_its_challenge(provider: Any, keys: ClientKeys, name: str) -> None:
    challenge_id, seed = fresh_challenge(provider.http)
    crafted = CRAFTED_PUBLIC_KEYS[name](keys, seed)
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id=challenge_id), [crafted]),
        422,
        "key_not_from_challenge",
        "uniform half of the public key",
        challenge_id,
    )
    assert challenge_used(provider, challenge_id)
    # The seed is never tried twice: not even the honest key is taken on a spent challenge.
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id=challenge_id), [keys.public_key_bytes(seed)]),
        409,
        "challenge_used",
        challenge_id,
    )


def test_a_key_built_on_another_challenges_seed_is_refused(provider: Any, keys: ClientKeys) -> None:
    first_id, first_seed = fresh_challenge(provider.http)
    second_id, _ = fresh_challenge(provider.http)
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id=second_id), [keys.public_key_bytes(first_seed)]),
        422,
        "key_not_from_challenge",
        second_id,
    )
    # The first challenge was not touched: the key registers on it, once.
    resp = send(provider, dict(INFERENCE, challenge_id=first_id), [keys.public_key_bytes(first_seed)])
    assert resp.status_code == 201, resp.text
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id=first_id), [keys.public_key_bytes(first_seed)]),
        409,
        "challenge_used",
    )
    assert provider.http.delete(f"/v1/keys/{resp.json()['key_id']}").status_code == 204


def test_expired_unknown_and_missing_challenges_are_refused(provider: Any, keys: ClientKeys) -> None:
    challenge_id, seed = fresh_challenge(provider.http)
    conn = sqlite3.connect(str(provider.db_path), timeout=30, isolation_level=None)
    try:  # as time would: the challenge's five minutes are over
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        conn.execute("UPDATE challenges SET expires_at = ? WHERE challenge_id = ?", (past, challenge_id))
    finally:
        conn.close()
    pk = keys.public_key_bytes(seed)
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id=challenge_id), [pk]),
        410,
        "challenge_expired",
        challenge_id,
    )
    refused(
        provider,
        lambda: send(provider, dict(INFERENCE, challenge_id="c_" + "0" * 24), [pk]),
        404,
        "unknown_challenge",
        "c_" + "0" * 24,
    )
    refused(provider, lambda: send(provider, INFERENCE, [pk]), 422, "challenge_required", "/v1/keys/challenges")


def test_a_challenge_is_fresh_random_and_short_lived(provider: Any) -> None:
    before = datetime.now(UTC)
    bodies = [provider.http.post("/v1/keys/challenges") for _ in range(3)]
    assert [r.status_code for r in bodies] == [201] * 3
    got = [r.json() for r in bodies]
    assert len({g["challenge_id"] for g in got}) == len({g["seed"] for g in got}) == 3
    for g in got:
        assert len(bytes.fromhex(g["seed"])) == 32
        lifetime = datetime.fromisoformat(g["expires_at"]) - before
        assert timedelta(minutes=4) < lifetime <= timedelta(minutes=5, seconds=5)


# --------------------------------------------------------------------------- crafted Galois keys


def forged_galois_keys(keys: ClientKeys, seed: bytes, slot: tuple[int, int], p1: np.ndarray) -> bytes:
    gk = seal.GaloisKeys()
    load_from_bytes(gk, keys.he.context, keys.galois_key_bytes(STRIDE_BITS, seed))
    blob = KeyBlob.of_galois_keys(keys.he, gk)
    data = blob.data(slot)
    data[1] = p1
    blob.write(slot, data)
    raw = blob.to_bytes()
    load_from_bytes(seal.GaloisKeys(), keys.he.context, raw)  # SEAL is content with it
    return raw


@pytest.mark.parametrize("what", ["zero", "constant", "swapped components"])
def test_galois_keys_with_a_crafted_uniform_half_are_refused(provider: Any, keys: ClientKeys, what: str) -> None:
    elements = trace_galois_elements(keys.he.n, STRIDE_BITS)
    challenge_id, seed = fresh_challenge(provider.http)
    slot = (elements[-1], 1)
    p1 = {
        "zero": np.zeros((4, keys.he.n), dtype=np.uint64),
        "constant": constant(keys, 7),
        "swapped components": uniform_half(keys.he, seed, (elements[-1], 0)),
    }[what]
    galois = forged_galois_keys(keys, seed, slot, p1)
    header = {
        "client_name": CLIENT,
        "purpose": "alignment",
        "parameter_set": PSET,
        "galois_elements": elements,
        "challenge_id": challenge_id,
    }
    refused(
        provider,
        lambda: send(provider, header, [keys.public_key_bytes(seed), galois]),
        422,
        "key_not_from_challenge",
        f"Galois element {elements[-1]}, component 1",
    )


def test_honest_seeded_alignment_key_is_registered(provider: Any, pc: ProviderClient, keys: ClientKeys) -> None:
    challenge = pc.key_challenge()
    seed = bytes.fromhex(challenge.seed)
    elements = trace_galois_elements(keys.he.n, STRIDE_BITS)
    info = pc.register_key(
        KeyRegistrationHeader(
            client_name=CLIENT,
            purpose="alignment",
            parameter_set=PSET,
            galois_elements=elements,
            challenge_id=challenge.challenge_id,
        ),
        keys.public_key_bytes(seed),
        keys.galois_key_bytes(STRIDE_BITS, seed),
    )
    assert info.galois_elements == elements
    pc.revoke_key(info.key_id)


# --------------------------------------------------------------------------- the attack, against an accepted key


def test_copies_of_one_query_do_not_average_out_the_mask(provider: Any, pc: ProviderClient, keys: ClientKeys) -> None:
    """The outside test's attack: many copies of one query in one request. Under a zero or constant
    key the replies' c1 differed by small noise only (so their mean was (seed polynomial) x W); under
    a key on the provider's seed each c1 carries a fresh RLWE sample a*u + e1, and the differences
    are uniform modulo q."""
    challenge = pc.key_challenge()
    seed = bytes.fromhex(challenge.seed)
    key = pc.register_key(
        KeyRegistrationHeader(
            client_name=CLIENT, purpose="inference", parameter_set=PSET, challenge_id=challenge.challenge_id
        ),
        keys.public_key_bytes(seed),
    )
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    query = encrypt_queries(keys, np.full((1, head.dim), 0.01), layout)[0]
    copies = pc.info().limits.max_queries_per_request
    header = ClassifyHeader(head_id="sst2", key_id=key.key_id, num_queries=copies, query_scale_bits=QUERY_SCALE_BITS)
    _, replies, _, _ = pc.classify(header, [query] * copies, max_blob_bytes=1 << 22)
    q = keys.he.output_level.primes[0]
    count = len(layout.output_positions(0))
    c1 = [
        ReplyCiphertext.from_bytes(r, level=keys.he.output_level.index, q=q, n=keys.he.n, count=count).c1
        for r in replies
    ]
    diffs = np.stack([centered(keys.he.ntt(q).inverse(submod(c, c1[0], q)), q) for c in c1[1:]]).astype(np.float64)
    # Small noise differences would all be below 2^6; uniform ones fall below 2^50 with probability 2^-9.
    assert np.mean(np.abs(diffs) < 2.0**50) < 0.01
    assert np.std(diffs) > q / 8
    pc.revoke_key(key.key_id)
