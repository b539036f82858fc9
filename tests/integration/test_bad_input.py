"""Bad input against the real provider (and the client agent): every refusal is a clear 4xx with a
JSON body {"error", "detail"} whose detail names the problem, and a refused request changes nothing.

"Changes nothing" is checked on the provider's persistent state itself: every row of every table of
its SQLite database (read with a second connection; the server runs in WAL mode) plus the files of
its blob and session stores, before and after each refused request; and through the API (heads,
registered clients and keys, corpora, the session under test).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helix_it_helpers import (
    assert_api_error,
    assert_refused_without_effect,
    files_snapshot,
    fresh_challenge,
    https_client,
    raw_https_exchange,
    register_seeded,
    snapshot,
)

from client_agent.maps import MapStore
from client_agent.provider_client import ProviderClient
from helix_alignment import AffineMap
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.cross_covariance import encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.linear_head import encrypt_queries
from helix_he.packing import CrossCovarianceLayout, LinearHeadLayout, trace_galois_elements
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    ClassifyBatchHeader,
    ClassifyHeader,
    KeyPurpose,
    KeyRegistrationHeader,
)

STRIDE_BITS = 7  # alignment keys here allow 128 samples per ciphertext: the 400-text corpus at D = 64 takes 4
ALIGNMENT_SCALE_BITS = CrossCovarianceLayout(8192, 64, 400, STRIDE_BITS).data_scale_bits

CLIENT_NAME = "pytest-bad-input"
PSET = "ckks-n8192-q200"
OTHER_PSET = "ckks-n16384-q200"
FRAME = {"content-type": FRAME_MEDIA_TYPE}
MiB = 1024 * 1024


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


@dataclass
class RegisteredKey:
    key_id: str
    keys: ClientKeys


def register(pc: ProviderClient, purpose: KeyPurpose, parameter_set: str = PSET) -> RegisteredKey:
    keys = ClientKeys.generate(parameter_set)
    bits = STRIDE_BITS if purpose == KeyPurpose.alignment else 0
    info = register_seeded(
        pc,
        keys,
        KeyRegistrationHeader(
            client_name=CLIENT_NAME,
            purpose=purpose,
            parameter_set=parameter_set,
            galois_elements=trace_galois_elements(keys.he.n, bits),
        ),
        bits,
    )
    return RegisteredKey(info.key_id, keys)


@pytest.fixture(scope="module")
def inference_key(pc: ProviderClient) -> RegisteredKey:
    return register(pc, KeyPurpose.inference)


@pytest.fixture(scope="module")
def alignment_key(pc: ProviderClient) -> RegisteredKey:
    return register(pc, KeyPurpose.alignment)


@pytest.fixture(scope="module")
def head(pc: ProviderClient) -> Any:
    return pc.head("sst2")


@pytest.fixture(scope="module")
def query_x(head: Any) -> np.ndarray:
    return np.random.default_rng(5).normal(0.0, 0.05, size=(1, head.dim))


@pytest.fixture(scope="module")
def valid_query(inference_key: RegisteredKey, head: Any, query_x: np.ndarray) -> bytes:
    layout = LinearHeadLayout(n=inference_key.keys.he.n, d=head.dim, k=head.num_classes)
    return encrypt_queries(inference_key.keys, query_x, layout)[0]


def classify_frame(
    key_id: str,
    blobs: list[bytes],
    *,
    head_id: str = "sst2",
    num_queries: int | None = None,
    scale_bits: int = QUERY_SCALE_BITS,
) -> bytes:
    header = ClassifyHeader(
        head_id=head_id,
        key_id=key_id,
        num_queries=len(blobs) if num_queries is None else num_queries,
        query_scale_bits=scale_bits,
    )
    return encode_frame(header, blobs)


def post_classify(provider: Any, body: bytes, headers: dict[str, str] | None = None) -> Callable[[], httpx.Response]:
    return lambda: provider.http.post("/v1/classify", content=body, headers=FRAME if headers is None else headers)


# --------------------------------------------------------------------------- a valid request works


def test_valid_classify_is_accepted(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    """The control for everything below: the same key, head and query are fine when well formed."""
    resp = post_classify(provider, classify_frame(inference_key.key_id, [valid_query]))()
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == FRAME_MEDIA_TYPE


# --------------------------------------------------------------------------- frames and ciphertexts


def test_bad_magic_is_400(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = b"NOPE" + classify_frame(inference_key.key_id, [valid_query])[4:]
    assert_refused_without_effect(provider, post_classify(provider, body), 400, "malformed_frame", "magic")


def test_frame_count_mismatch_is_400(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [valid_query], num_queries=2)
    assert_refused_without_effect(
        provider, post_classify(provider, body), 400, "malformed_frame", "2 queries", "1 ciphertext"
    )


def test_truncated_frame_is_400(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [valid_query])[:-100]
    assert_refused_without_effect(provider, post_classify(provider, body), 400, "malformed_frame", "truncated")


def test_truncated_ciphertext_is_422(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [valid_query[: len(valid_query) // 2]])
    assert_refused_without_effect(
        provider,
        post_classify(provider, body),
        422,
        "invalid_ciphertext",
        "query 0",
        f"{len(valid_query) // 2} bytes",
        f"has {len(valid_query)}",
    )


def test_random_blob_is_422(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [os.urandom(len(valid_query))])
    assert_refused_without_effect(provider, post_classify(provider, body), 422, "invalid_ciphertext", "bad magic")


def test_residue_not_below_its_prime_is_422(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    bad = bytearray(valid_query)
    bad[-8:] = b"\xff" * 8
    body = classify_frame(inference_key.key_id, [bytes(bad)])
    assert_refused_without_effect(
        provider, post_classify(provider, body), 422, "invalid_ciphertext", "not below its prime"
    )


def test_ciphertext_over_max_ciphertext_bytes_is_400(provider: Any, inference_key: RegisteredKey) -> None:
    limit = provider.http.get("/v1/info").json()["limits"]["max_ciphertext_bytes"]
    body = classify_frame(inference_key.key_id, [b"\0" * (limit + 1)])
    assert_refused_without_effect(
        provider, post_classify(provider, body), 400, "malformed_frame", f"{limit + 1} bytes", f"limit is {limit}"
    )


def test_ciphertext_of_another_parameter_set_is_422(
    provider: Any, inference_key: RegisteredKey, head: Any, query_x: np.ndarray
) -> None:
    other = ClientKeys.generate(OTHER_PSET)
    blob = encrypt_queries(other, query_x, LinearHeadLayout(n=other.he.n, d=head.dim, k=head.num_classes))[0]
    body = classify_frame(inference_key.key_id, [blob])
    assert_refused_without_effect(provider, post_classify(provider, body), 422, "invalid_ciphertext", PSET)


def test_ciphertext_at_the_wrong_level_is_422(
    provider: Any, inference_key: RegisteredKey, head: Any, query_x: np.ndarray
) -> None:
    he = inference_key.keys.he
    layout = LinearHeadLayout(n=he.n, d=head.dim, k=head.num_classes)
    blob = bytearray(encrypt_queries(inference_key.keys, query_x, layout)[0])
    blob[5] = he.input_level.index  # the header's level byte; queries live at the last level
    body = classify_frame(inference_key.key_id, [bytes(blob)])
    assert_refused_without_effect(
        provider,
        post_classify(provider, body),
        422,
        "invalid_ciphertext",
        f"level {he.input_level.index}",
        f"expected {he.output_level.index}",
    )


def test_wrong_query_scale_bits_is_422(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [valid_query], scale_bits=30)
    assert_refused_without_effect(provider, post_classify(provider, body), 422, "invalid_ciphertext", "scale", "2^30")


def scaled_query(keys: ClientKeys, x: np.ndarray, head: Any, bits: int) -> bytes:
    """A well-formed query encoded at 2^bits instead of the pinned scale: the scaled-query attack,
    which would read every output (and the flooding with it) at 2^(bits - 26) times the precision."""
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    ct = keys.encrypt_seeded(layout.query_coefficients(x, 2.0**bits), 2.0**bits)[0]
    return ct.to_bytes(keys.he.output_level.primes)


def test_only_the_pinned_query_scale_is_accepted(
    provider: Any, inference_key: RegisteredKey, head: Any, query_x: np.ndarray
) -> None:
    """Declared and actual scale agree but are not the pinned 2^26 (accepted before scales were
    pinned), or the header declares 2^26 while the ciphertext is scaled: both 422, nothing kept."""
    scaled = scaled_query(inference_key.keys, query_x, head, 36)
    for declared, words in ((36, ("2^36", "pinned")), (QUERY_SCALE_BITS, ("2^36.00", "pinned", "2^26"))):
        body = classify_frame(inference_key.key_id, [scaled], scale_bits=declared)
        assert_refused_without_effect(provider, post_classify(provider, body), 422, "invalid_ciphertext", *words)
    features = [
        ct.to_bytes(inference_key.keys.he.output_level.primes)
        for ct in inference_key.keys.encrypt_seeded(
            LinearHeadLayout(n=inference_key.keys.he.n, d=head.dim, k=head.num_classes).batch_coefficients(
                np.vstack([query_x, query_x]), 2.0**36
            ),
            2.0**36,
        )
    ]
    batch = ClassifyBatchHeader(
        head_id="sst2", key_id=inference_key.key_id, num_queries=2, dim=head.dim, query_scale_bits=QUERY_SCALE_BITS
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/classify/batch", content=encode_frame(batch, features), headers=FRAME),
        422,
        "invalid_ciphertext",
        "pinned",
    )


def test_wrong_content_type_is_415(provider: Any, inference_key: RegisteredKey, valid_query: bytes) -> None:
    body = classify_frame(inference_key.key_id, [valid_query])
    assert_refused_without_effect(
        provider,
        post_classify(provider, body, {"content-type": "application/json"}),
        415,
        "unsupported_media_type",
        FRAME_MEDIA_TYPE,
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/keys", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
        "text/plain",
    )


# --------------------------------------------------------------------------- request size limits


def test_content_length_over_max_request_bytes_is_413(provider: Any) -> None:
    limit = provider.http.get("/v1/info").json()["limits"]["max_request_bytes"]
    assert limit == 32 * MiB
    head = (
        f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FRAME_MEDIA_TYPE}\r\n"
        f"Content-Length: {limit + 1}\r\n\r\n"
    ).encode()

    def send() -> httpx.Response:
        status, headers, body = raw_https_exchange(provider.url, provider.ca, head, [b"HLXF" + b"\0" * 4096])
        return httpx.Response(
            status, headers=headers, content=body, request=httpx.Request("POST", f"{provider.url}/v1/classify")
        )

    assert_refused_without_effect(provider, send, 413, "request_too_large", str(limit + 1), str(limit))


def test_chunked_body_over_max_request_bytes_is_413(
    provider: Any, inference_key: RegisteredKey, valid_query: bytes
) -> None:
    limit = provider.http.get("/v1/info").json()["limits"]["max_request_bytes"]
    frame = classify_frame(inference_key.key_id, [valid_query])

    def body() -> Iterator[bytes]:  # no length known up front: httpx sends Transfer-Encoding: chunked
        yield frame
        sent, piece = len(frame), b"\0" * MiB
        while sent <= limit:
            yield piece
            sent += len(piece)

    sent: list[httpx.Request] = []

    def send() -> httpx.Response:
        with https_client(provider.url, provider.ca, headers={"Authorization": f"Bearer {provider.api_key}"}) as http:
            resp = http.post("/v1/classify", content=body(), headers=FRAME)
            sent.append(resp.request)
            return resp

    assert_refused_without_effect(provider, send, 413, "request_too_large", str(limit))
    assert sent[0].headers.get("transfer-encoding") == "chunked" and "content-length" not in sent[0].headers


# --------------------------------------------------------------------------- unknown ids


def test_unknown_ids_are_404(
    provider: Any, inference_key: RegisteredKey, alignment_key: RegisteredKey, valid_query: bytes
) -> None:
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    http = provider.http
    cases: list[tuple[Callable[[], httpx.Response], str, str]] = [
        (
            post_classify(provider, classify_frame(inference_key.key_id, [valid_query], head_id="no-such-head")),
            "unknown_head",
            "no-such-head",
        ),
        (post_classify(provider, classify_frame("k_nosuchkey", [valid_query])), "unknown_key", "k_nosuchkey"),
        (lambda: http.get("/v1/heads/no-such-head"), "unknown_head", "no-such-head"),
        (lambda: http.get("/v1/heads/no-such-head/texts"), "unknown_head", "no-such-head"),
        (lambda: http.get("/v1/corpora/no-such-corpus"), "unknown_corpus", "no-such-corpus"),
        (lambda: http.get("/v1/corpora/no-such-corpus/texts"), "unknown_corpus", "no-such-corpus"),
        (lambda: http.get("/v1/keys/k_nosuchkey"), "unknown_key", "k_nosuchkey"),
        (lambda: http.delete("/v1/keys/k_nosuchkey"), "unknown_key", "k_nosuchkey"),
        (lambda: http.get("/v1/alignments/a_nosuchsession"), "unknown_alignment_session", "a_nosuchsession"),
        (lambda: http.post("/v1/alignments/a_nosuchsession/compute"), "unknown_alignment_session", "a_nosuchsession"),
        (lambda: http.get("/v1/alignments/a_nosuchsession/result"), "unknown_alignment_session", "a_nosuchsession"),
        (lambda: http.delete("/v1/alignments/a_nosuchsession"), "unknown_alignment_session", "a_nosuchsession"),
        (
            lambda: http.put(
                "/v1/alignments/a_nosuchsession/chunks",
                content=encode_frame(
                    AlignmentChunkHeader(start=0, count=1, data_scale_bits=ALIGNMENT_SCALE_BITS), [valid_query]
                ),
                headers=FRAME,
            ),
            "unknown_alignment_session",
            "a_nosuchsession",
        ),
        (
            lambda: http.post(
                "/v1/alignments",
                json=AlignmentCreate(
                    head_id="no-such-head",
                    corpus_id="wiki",
                    corpus_sha256=sha,
                    key_id=alignment_key.key_id,
                    feature_dim=8,
                ).model_dump(mode="json"),
            ),
            "unknown_head",
            "no-such-head",
        ),
        (
            lambda: http.post(
                "/v1/alignments",
                json=AlignmentCreate(
                    head_id="sst2",
                    corpus_id="no-such-corpus",
                    corpus_sha256=sha,
                    key_id=alignment_key.key_id,
                    feature_dim=8,
                ).model_dump(mode="json"),
            ),
            "unknown_corpus",
            "no-such-corpus",
        ),
        (
            lambda: http.post(
                "/v1/alignments",
                json=AlignmentCreate(
                    head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id="k_nosuchkey", feature_dim=8
                ).model_dump(mode="json"),
            ),
            "unknown_key",
            "k_nosuchkey",
        ),
        (
            lambda: provider.admin.post("/v1/admin/heads/no-such-head/reference-logits", json={"embeddings": [[0.0]]}),
            "unknown_head",
            "no-such-head",
        ),
        (lambda: provider.admin.delete("/v1/admin/heads/no-such-head"), "unknown_head", "no-such-head"),
        (lambda: provider.admin.delete("/v1/admin/corpora/no-such-corpus"), "unknown_corpus", "no-such-corpus"),
        (
            lambda: provider.admin.post("/v1/admin/heads", json={"name": "h404", "dataset": "no-such-dataset"}),
            "unknown_dataset",
            "no-such-dataset",
        ),
    ]
    for send, code, ident in cases:
        assert_refused_without_effect(provider, send, 404, code, ident)


def test_revoked_key_is_404(provider: Any, pc: ProviderClient, head: Any, query_x: np.ndarray) -> None:
    key = register(pc, KeyPurpose.inference)
    pc.revoke_key(key.key_id)
    blob = encrypt_queries(key.keys, query_x, LinearHeadLayout(n=key.keys.he.n, d=head.dim, k=head.num_classes))
    assert_refused_without_effect(
        provider, post_classify(provider, classify_frame(key.key_id, blob)), 404, "unknown_key", key.key_id
    )


# --------------------------------------------------------------------------- keys: expiry, purpose, registration


def expire_key_in_db(db_path: Path, key_id: str) -> str:
    """Make a registered key expire, as time would: rewrite its expires_at in the provider's
    SQLite database (a second writer; the server uses WAL and a busy timeout covers the lock)."""
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("UPDATE keys SET expires_at = ? WHERE key_id = ?", (past, key_id)).rowcount == 1
    finally:
        conn.close()
    return past


def test_expired_inference_key_is_410(provider: Any, pc: ProviderClient, head: Any, query_x: np.ndarray) -> None:
    key = register(pc, KeyPurpose.inference)
    blob = encrypt_queries(key.keys, query_x, LinearHeadLayout(n=key.keys.he.n, d=head.dim, k=head.num_classes))
    assert post_classify(provider, classify_frame(key.key_id, blob))().status_code == 200
    expire_key_in_db(provider.db_path, key.key_id)
    assert_refused_without_effect(
        provider, post_classify(provider, classify_frame(key.key_id, blob)), 410, "key_expired", key.key_id, "expired"
    )


def test_expired_alignment_key_is_410(provider: Any, pc: ProviderClient) -> None:
    key = register(pc, KeyPurpose.alignment)
    expire_key_in_db(provider.db_path, key.key_id)
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    body = AlignmentCreate(head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=key.key_id, feature_dim=8)
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/alignments", json=body.model_dump(mode="json")),
        410,
        "key_expired",
        key.key_id,
    )


def test_key_of_the_wrong_purpose_is_403(
    provider: Any, alignment_key: RegisteredKey, inference_key: RegisteredKey, head: Any, query_x: np.ndarray
) -> None:
    keys = alignment_key.keys
    blob = encrypt_queries(keys, query_x, LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes))
    assert_refused_without_effect(
        provider,
        post_classify(provider, classify_frame(alignment_key.key_id, blob)),
        403,
        "wrong_key_purpose",
        "alignment",
        "inference",
    )
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    body = AlignmentCreate(
        head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=inference_key.key_id, feature_dim=8
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/alignments", json=body.model_dump(mode="json")),
        403,
        "wrong_key_purpose",
        "inference",
        "alignment",
    )


def test_bad_key_registrations_are_refused(provider: Any) -> None:
    keys = ClientKeys.generate(PSET)
    other = ClientKeys.generate(OTHER_PSET)

    def register_raw(header: dict[str, Any], blobs: list[bytes]) -> Callable[[], httpx.Response]:
        def send() -> httpx.Response:
            challenge_id, _seed = fresh_challenge(provider.http)  # a valid challenge: the key itself is bad
            frame = encode_frame(KeyRegistrationHeader.model_validate(dict(header, challenge_id=challenge_id)), blobs)
            return provider.http.post("/v1/keys", content=frame, headers=FRAME)

        return send

    base = {"client_name": CLIENT_NAME, "purpose": "inference", "parameter_set": PSET}
    assert_refused_without_effect(
        provider,
        register_raw(dict(base, parameter_set="ckks-n4096-tiny"), [keys.public_key_bytes()]),
        422,
        "parameter_set_not_accepted",
        "ckks-n4096-tiny",
    )
    assert_refused_without_effect(
        provider, register_raw(base, [other.public_key_bytes()]), 422, "invalid_public_key", PSET
    )
    assert_refused_without_effect(
        provider, register_raw(base, [os.urandom(4096)]), 422, "invalid_public_key", "SEAL header"
    )
    assert_refused_without_effect(provider, register_raw(base, []), 400, "malformed_frame", "exactly one blob")
    bad_header = encode_frame(KeyRegistrationHeader(**base), [keys.public_key_bytes()]).replace(
        b'"inference"', b'"telepathy"', 1
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/keys", content=bad_header, headers=FRAME),
        400,
        "malformed_frame",
        "purpose",
    )


# --------------------------------------------------------------------------- admin authentication


def test_admin_requires_the_right_token(provider: Any) -> None:
    with (
        https_client(provider.url, provider.ca) as anon,
        https_client(provider.url, provider.ca, headers={"Authorization": "Bearer not-the-token"}) as wrong,
        https_client(provider.url, provider.ca, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}) as basic,
    ):
        for client, words in ((anon, ("missing",)), (wrong, ("wrong admin token",)), (basic, ("missing", "Bearer"))):
            for send in (
                lambda client=client: client.get("/v1/admin/heads"),
                lambda client=client: client.get("/v1/admin/clients"),
                lambda client=client: client.post(
                    "/v1/admin/heads", json={"name": "intruder", "dataset": "sst2", "max_examples": 20}
                ),
                lambda client=client: client.post("/v1/admin/corpora", json={"name": "intruder", "texts": ["a", "b"]}),
                lambda client=client: client.delete("/v1/admin/heads/sst2"),
                lambda client=client: client.delete("/v1/admin/corpora/wiki"),
                lambda client=client: client.post(
                    "/v1/admin/heads/sst2/reference-logits", json={"embeddings": [[0.0] * 384]}
                ),
            ):
                assert_refused_without_effect(provider, send, 401, "unauthorized", *words)
            resp = client.get("/v1/admin/heads")
            assert resp.headers.get("www-authenticate") == "Bearer"


# --------------------------------------------------------------------------- JSON bodies


def test_bad_json_bodies_are_422(provider: Any, alignment_key: RegisteredKey) -> None:
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    good = AlignmentCreate(
        head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=alignment_key.key_id, feature_dim=8
    ).model_dump(mode="json")
    http = provider.http
    json_ct = {"content-type": "application/json"}
    cases: list[tuple[Callable[[], httpx.Response], tuple[str, ...]]] = [
        (lambda: http.post("/v1/alignments", content=b'{"head_id": "sst2", ', headers=json_ct), ("json",)),
        (lambda: http.post("/v1/alignments", content=b"", headers=json_ct), ("body",)),
        (
            lambda: http.post("/v1/alignments", json={k: v for k, v in good.items() if k != "corpus_sha256"}),
            ("corpus_sha256",),
        ),
        (lambda: http.post("/v1/alignments", json=dict(good, feature_dim=0)), ("feature_dim",)),
        (lambda: http.post("/v1/alignments", json=dict(good, corpus_sha256="not-hex")), ("corpus_sha256",)),
        (lambda: http.post("/v1/alignments", json=dict(good, surprise=1)), ("surprise",)),
        (lambda: provider.admin.post("/v1/admin/heads", content=b"[1, 2", headers=json_ct), ("json",)),
        (lambda: provider.admin.post("/v1/admin/heads", json={"name": "bad name!", "dataset": "sst2"}), ("name",)),
        (
            lambda: provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": []}),
            ("embeddings",),
        ),
    ]
    for send, words in cases:
        assert_refused_without_effect(provider, send, 422, "invalid_request", *words)
    # Handler-level validation of well-formed JSON: same shape, its own code.
    assert_refused_without_effect(
        provider,
        lambda: provider.admin.post("/v1/admin/corpora", json={"name": "both", "texts": ["a"], "dataset": "wikipedia"}),
        422,
        "invalid_request",
        "either",
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": [[0.0, 1.0]]}),
        422,
        "dimension_mismatch",
        "384",
    )
    assert_refused_without_effect(
        provider,
        lambda: http.post("/v1/alignments", json=dict(good, feature_dim=8193)),
        422,
        "feature_dim_too_large",
        "8193",
    )


def test_alignment_with_too_few_samples_for_its_dimension_is_refused(
    provider: Any, pc: ProviderClient, alignment_key: RegisteredKey
) -> None:
    """D >= n (with X = identity such a session would return Y_A itself), and anything short of
    n >= 2 (D + 1): 422 naming the numbers, nothing stored. The boundary itself is accepted."""
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    good = AlignmentCreate(
        head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=alignment_key.key_id, feature_dim=8
    ).model_dump(mode="json")
    for dim, needed in ((400, 802), (1000, 2002), (200, 402)):
        assert_refused_without_effect(
            provider,
            lambda dim=dim: provider.http.post("/v1/alignments", json=dict(good, feature_dim=dim)),
            422,
            "too_few_samples",
            "400 samples",
            f"feature_dim {dim}",
            f"at least {needed}",
        )
    # 32 published head texts lift n to 432 >= 402; 199 features need exactly the corpus's 400.
    for extra in ({"feature_dim": 200, "include_head_texts": True}, {"feature_dim": 199}):
        resp = provider.http.post("/v1/alignments", json=dict(good, **extra))
        assert resp.status_code == 201, resp.text
        assert provider.http.delete(f"/v1/alignments/{resp.json()['session_id']}").status_code == 204


# --------------------------------------------------------------------------- alignment sessions


@pytest.fixture(scope="module")
def session4(provider: Any, pc: ProviderClient, alignment_key: RegisteredKey) -> dict[str, Any]:
    """A receiving session of 4 ciphertexts (400 samples, feature_dim 64, stride 128 -> 128 samples each),
    with ciphertext 0 uploaded."""
    sha = pc.corpus("wiki").sha256
    session = pc.create_alignment(
        AlignmentCreate(
            head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=alignment_key.key_id, feature_dim=64
        )
    )
    keys = alignment_key.keys
    layout = CrossCovarianceLayout(
        n=keys.he.n, feature_dim=64, num_samples=session.num_samples, stride_bits=STRIDE_BITS
    )
    assert layout.data_scale_bits == ALIGNMENT_SCALE_BITS and session.stride_bits == STRIDE_BITS
    assert session.num_ciphertexts == layout.num_ciphertexts == 4
    x = np.hstack(
        [np.random.default_rng(3).uniform(-1, 1, size=(session.num_samples, 63)), np.ones((session.num_samples, 1))]
    )
    blobs = encrypt_alignment_data(keys, x, layout, 0, 4)
    session = pc.upload_chunk(
        session.session_id, AlignmentChunkHeader(start=0, count=1, data_scale_bits=ALIGNMENT_SCALE_BITS), blobs[:1]
    )
    assert session.received_ciphertexts == 1
    return {"id": session.session_id, "blobs": blobs, "keys": keys}


def put_chunk(
    provider: Any,
    session_id: str,
    start: int,
    count: int,
    blobs: list[bytes],
    scale_bits: int = ALIGNMENT_SCALE_BITS,
    headers: dict[str, str] | None = None,
) -> Callable[[], httpx.Response]:
    frame = encode_frame(AlignmentChunkHeader(start=start, count=count, data_scale_bits=scale_bits), blobs)
    return lambda: provider.http.put(f"/v1/alignments/{session_id}/chunks", content=frame, headers=headers or FRAME)


def test_chunk_out_of_range_is_422(provider: Any, session4: dict[str, Any]) -> None:
    sid, blobs = session4["id"], session4["blobs"]
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 3, 2, blobs[2:4]),
        422,
        "chunk_out_of_range",
        "[3, 5)",
        "4",
        session_ids=(sid,),
    )
    assert_refused_without_effect(
        provider, put_chunk(provider, sid, 4, 1, blobs[3:4]), 422, "chunk_out_of_range", "[4, 5)", session_ids=(sid,)
    )


def test_bad_chunks_are_refused(provider: Any, session4: dict[str, Any], valid_query: bytes) -> None:
    sid, blobs = session4["id"], session4["blobs"]
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 2, blobs[1:2]),
        400,
        "malformed_frame",
        "2 ciphertexts",
        "1 were sent",
        session_ids=(sid,),
    )
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 5, blobs + blobs[:1]),
        400,
        "malformed_frame",
        "5 blobs",
        "limit is 4",
        session_ids=(sid,),
    )
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 1, blobs[1:2], scale_bits=ALIGNMENT_SCALE_BITS + 1),
        422,
        "scale_mismatch",
        f"2^{ALIGNMENT_SCALE_BITS}",
        f"2^{ALIGNMENT_SCALE_BITS + 1}",
        session_ids=(sid,),
    )
    truncated = blobs[1][: len(blobs[1]) - 10]
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 2, [blobs[1], truncated]),
        422,
        "invalid_ciphertext",
        "ciphertext 1",
        "truncated",
        session_ids=(sid,),
    )
    # A data ciphertext at the right level, but encoded at another scale than the header says.
    keys = session4["keys"]
    other = CrossCovarianceLayout(keys.he.n, 64, 16384, STRIDE_BITS)
    assert other.data_scale_bits != ALIGNMENT_SCALE_BITS
    x = np.random.default_rng(4).uniform(-1, 1, size=(128, 64))
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 1, encrypt_alignment_data(keys, x, other, 0, 1)),
        422,
        "invalid_ciphertext",
        "scale",
        session_ids=(sid,),
    )
    assert_refused_without_effect(
        provider,
        put_chunk(provider, sid, 1, 1, blobs[1:2], headers={"content-type": "application/octet-stream"}),
        415,
        "unsupported_media_type",
        FRAME_MEDIA_TYPE,
        session_ids=(sid,),
    )


def test_compute_before_all_chunks_is_409(provider: Any, session4: dict[str, Any]) -> None:
    sid = session4["id"]
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post(f"/v1/alignments/{sid}/compute"),
        409,
        "chunks_missing",
        "3 of 4",
        session_ids=(sid,),
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.get(f"/v1/alignments/{sid}/result"),
        409,
        "result_not_ready",
        "receiving",
        session_ids=(sid,),
    )
    assert provider.http.get(f"/v1/alignments/{sid}").json()["state"] == "receiving"


def test_corpus_sha_mismatch_is_409(provider: Any, alignment_key: RegisteredKey) -> None:
    body = AlignmentCreate(
        head_id="sst2", corpus_id="wiki", corpus_sha256="0" * 64, key_id=alignment_key.key_id, feature_dim=8
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.http.post("/v1/alignments", json=body.model_dump(mode="json")),
        409,
        "corpus_mismatch",
        "0" * 64,
        provider.http.get("/v1/corpora/wiki").json()["sha256"],
    )


def test_admin_conflicts_are_409(provider: Any) -> None:
    assert_refused_without_effect(
        provider,
        lambda: provider.admin.post("/v1/admin/heads", json={"name": "sst2", "dataset": "sst2"}),
        409,
        "head_exists",
        "sst2",
    )
    assert_refused_without_effect(
        provider,
        lambda: provider.admin.post("/v1/admin/corpora", json={"name": "wiki", "texts": ["a"]}),
        409,
        "corpus_exists",
        "wiki",
    )


# --------------------------------------------------------------------------- the client agent


@pytest.fixture(scope="module")
def fresh_agent(client_agent_factory: Any) -> Iterator[Any]:
    """An agent of its own: no keys and no maps yet, so any side effect of a refusal shows."""
    agent = client_agent_factory("client-agent-fresh", HELIX_CLIENT_CLIENT_NAME="pytest-fresh-agent")
    try:
        yield agent
    finally:
        agent.close()


def agent_files(agent: Any) -> dict[str, list[tuple[str, int]]]:
    return {d: files_snapshot(Path(agent.data_dir) / d) for d in ("keys", "maps")}


def test_agent_refuses_a_map_fitted_for_another_embedder(provider: Any, fresh_agent: Any) -> None:
    """A map whose client_model_id is not the agent's embedder is refused with 409, before any
    key is registered or anything is sent to the provider."""
    head = provider.http.get("/v1/heads/sst2").json()
    wl_dim = 256
    stored = MapStore(Path(fresh_agent.data_dir) / "maps").save(
        {
            "provider_url": provider.url,
            "head_id": "sst2",
            "corpus_id": "wiki",
            "corpus_sha256": "0" * 64,
            "client_model_id": "other",
            "provider_model_id": "sentence-transformers:all-MiniLM-L6-v2",
            "parameter_set": PSET,
            "ridge_lambda": 1e-4,
            "num_samples": 432,
            "include_head_texts": True,
            "created_at": datetime.now(UTC).isoformat(),
            "alignment_seconds": 0.0,
            "bytes_sent": 0,
            "bytes_received": 0,
        },
        AffineMap(np.zeros((wl_dim, head["dim"])), np.zeros(head["dim"])),
    )
    map_id = stored.meta.map_id
    before, files_before = snapshot(provider), agent_files(fresh_agent)
    resp = fresh_agent.http.post("/v1/classify", json={"texts": ["a fine film ."], "head_id": "sst2", "map_id": map_id})
    assert_api_error(resp, 409, "map_mismatch", map_id, "'other'", "wordllama")
    after, files_after = snapshot(provider), agent_files(fresh_agent)
    assert after.api["clients"] == before.api["clients"], "the refused classify registered a key at the provider"
    assert after.db == before.db
    assert files_after == files_before, "the refused classify left files in the agent's key or map store"


def test_agent_bad_requests(provider: Any, fresh_agent: Any) -> None:
    http = fresh_agent.http
    before, files_before = snapshot(provider), agent_files(fresh_agent)
    assert_api_error(http.post("/v1/classify", json={"texts": ["x"], "head_id": "sst2"}), 409, "no_alignment", "sst2")
    assert_api_error(
        http.post("/v1/classify", json={"texts": ["x"], "head_id": "sst2", "map_id": "m_0123456789abcdef"}),
        404,
        "unknown_map",
        "m_0123456789abcdef",
    )
    assert_api_error(
        http.post("/v1/classify", json={"texts": ["x"], "head_id": "no-such-head"}), 404, "unknown_head", "no-such-head"
    )
    assert_api_error(http.post("/v1/classify", json={"texts": [], "head_id": "sst2"}), 422, "invalid_request", "texts")
    assert_api_error(
        http.post("/v1/classify", content=b"{", headers={"content-type": "application/json"}),
        422,
        "invalid_request",
        "json",
    )
    assert_api_error(
        http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "no-such-corpus"}),
        404,
        "unknown_corpus",
        "no-such-corpus",
    )
    assert_api_error(
        http.post("/v1/alignments", json={"head_id": "no-such-head", "corpus_id": "wiki"}),
        404,
        "unknown_head",
        "no-such-head",
    )
    assert_api_error(http.get("/v1/alignments/j_nope"), 404, "unknown_alignment_job", "j_nope")
    assert_api_error(http.get("/v1/maps/m_nope"), 404, "unknown_map", "m_nope")
    assert http.get("/v1/alignments").json() == [], "a refused alignment request created a job"
    after = snapshot(provider)
    assert agent_files(fresh_agent) == files_before
    assert after.db == before.db and after.api == before.api
