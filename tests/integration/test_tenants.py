"""Tenants against the real provider: API keys, ownership, budgets, rate limits, usage, audit, logs.

A malicious second tenant with its own valid API key names the first tenant's key, session and
challenge ids: every attempt answers exactly like an unknown id (404, same body shape) and changes
nothing, and the first tenant's key, session and agent keep working. Missing, wrong and revoked API
keys are 401, a disabled tenant 403; each budget, exceeded, is 429 with Retry-After and charges
nothing. Usage and audit lines say what happened; no id and no API key reaches the provider's log."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helix_it_helpers import (
    assert_api_error,
    assert_refused_without_effect,
    bearer,
    create_tenant,
    https_client,
    poll_until,
    register_seeded,
)

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import CrossCovarianceLayout, LinearHeadLayout, stride_bits_for, trace_galois_elements
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentState,
    ClassifyHeader,
    KeyPurpose,
    KeyRegistrationHeader,
)

PSET = "ckks-n8192-q200"
FEATURE_DIM = 8
FRAME = {"content-type": FRAME_MEDIA_TYPE}
UNKNOWN_KEY = "k_" + "0" * 24
UNKNOWN_SESSION = "a_" + "0" * 24
UNKNOWN_CHALLENGE = "c_" + "0" * 24


@dataclass
class Secrets:
    """Every id and credential this module creates: none may appear in the provider's log."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v)

    def api_key(self, api_key: str) -> None:
        _, key_id, secret = api_key.split("_")
        self.add(api_key, key_id, secret)


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return Secrets()


def tenant_http(provider: Any, api_key: str) -> httpx.Client:
    return https_client(provider.url, provider.ca, headers=bearer(api_key))


def new_tenant(provider: Any, secrets: Secrets, name: str, **quotas: Any) -> tuple[str, str]:
    tenant_id, api_key = create_tenant(provider.admin, name, **quotas)
    secrets.api_key(api_key)
    return tenant_id, api_key


def inference_header(client: str = "pytest-tenants") -> KeyRegistrationHeader:
    return KeyRegistrationHeader(client_name=client, purpose=KeyPurpose.inference, parameter_set=PSET)


def classify_frame(keys: ClientKeys, head: dict[str, Any], key_id: str, m: int, seed: int = 0) -> tuple[bytes, Any]:
    layout = LinearHeadLayout(n=keys.he.n, d=head["dim"], k=head["num_classes"])
    x = np.random.default_rng(seed).normal(0.0, 0.05, size=(m, head["dim"]))
    header = ClassifyHeader(head_id=head["id"], key_id=key_id, num_queries=m, query_scale_bits=QUERY_SCALE_BITS)
    return encode_frame(header, encrypt_queries(keys, x, layout)), x


# --------------------------------------------------------------------------- the victim's state


@dataclass
class Victim:
    """The first tenant (the session's default one) with an inference key, an alignment session with
    one chunk uploaded, and an unused challenge."""

    keys: ClientKeys
    key_id: str
    alignment: ClientKeys
    alignment_key_id: str
    session_id: str
    layout: CrossCovarianceLayout
    x: np.ndarray
    blobs: list[bytes]
    challenge_id: str
    challenge_seed: bytes


@pytest.fixture(scope="module")
def victim(provider: Any, secrets: Secrets) -> Iterator[Victim]:
    secrets.api_key(provider.api_key)
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as pc:
        keys = ClientKeys.generate(PSET)
        key = register_seeded(pc, keys, inference_header())
        alignment = ClientKeys.generate(PSET)
        bits = stride_bits_for(alignment.he.n, FEATURE_DIM)
        al_key = register_seeded(
            pc,
            alignment,
            KeyRegistrationHeader(
                client_name="pytest-tenants",
                purpose=KeyPurpose.alignment,
                parameter_set=PSET,
                galois_elements=trace_galois_elements(alignment.he.n, bits),
            ),
            bits,
        )
        corpus = pc.corpus("wiki")
        session = pc.create_alignment(
            AlignmentCreate(
                head_id="sst2", corpus_id="wiki", corpus_sha256=corpus.sha256, key_id=al_key.key_id, feature_dim=8
            )
        )
        layout = CrossCovarianceLayout.for_key(alignment.he.n, FEATURE_DIM, session.num_samples, bits)
        rng = np.random.default_rng(5)
        x = np.hstack(
            [rng.uniform(-1, 1, size=(session.num_samples, FEATURE_DIM - 1)), np.ones((session.num_samples, 1))]
        )
        blobs = encrypt_alignment_data(alignment, x, layout, 0, layout.num_ciphertexts)
        half = max(1, len(blobs) // 2)
        pc.upload_chunk(
            session.session_id,
            AlignmentChunkHeader(start=0, count=half, data_scale_bits=layout.data_scale_bits),
            blobs[:half],
        )
        challenge = pc.key_challenge()
    secrets.add(key.key_id, al_key.key_id, session.session_id, challenge.challenge_id, challenge.seed)
    yield Victim(
        keys=keys,
        key_id=key.key_id,
        alignment=alignment,
        alignment_key_id=al_key.key_id,
        session_id=session.session_id,
        layout=layout,
        x=x,
        blobs=blobs,
        challenge_id=challenge.challenge_id,
        challenge_seed=bytes.fromhex(challenge.seed),
    )


@pytest.fixture(scope="module")
def mallory(provider: Any, secrets: Secrets) -> Iterator[httpx.Client]:
    """A second tenant with its own valid API key."""
    _, api_key = new_tenant(provider, secrets, "pytest-mallory")
    with tenant_http(provider, api_key) as http:
        yield http


def same_as_unknown(resp: httpx.Response, unknown: httpx.Response, real_id: str, fake_id: str) -> None:
    """A foreign id answers exactly as an unknown one: status, code and detail (but for the id)."""
    a, b = resp.json(), unknown.json()
    assert resp.status_code == unknown.status_code == 404
    assert a["error"] == b["error"] and a["detail"].replace(real_id, "<id>") == b["detail"].replace(fake_id, "<id>")


# --------------------------------------------------------------------------- authentication


def test_tenant_endpoints_refuse_missing_wrong_and_revoked_api_keys(provider: Any, secrets: Secrets) -> None:
    endpoints = [
        ("GET", "/v1/info"),
        ("GET", "/v1/heads"),
        ("GET", "/v1/heads/sst2/texts"),
        ("GET", "/v1/corpora/wiki/texts"),
        ("POST", "/v1/keys/challenges"),
        ("GET", f"/v1/keys/{UNKNOWN_KEY}"),
        ("POST", "/v1/classify"),
        ("GET", f"/v1/alignments/{UNKNOWN_SESSION}"),
        ("GET", "/v1/usage"),
    ]
    _, api_key = new_tenant(provider, secrets, "pytest-revoked")
    wrong_secret = api_key[: -len(api_key.split("_")[2])] + "0" * 64
    unknown_id = "hx_" + "0" * 16 + "_" + "0" * 64
    cases = [
        ({}, "api_key_required"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "api_key_required"),
        (bearer("not-an-api-key"), "invalid_api_key"),
        (bearer(unknown_id), "invalid_api_key"),
        (bearer(wrong_secret), "invalid_api_key"),
        (provider.admin.headers, "invalid_api_key"),  # the admin token is no tenant's key
    ]
    for headers, code in cases:
        for method, path in endpoints:
            body = assert_refused_without_effect(
                provider, lambda m=method, p=path, h=headers: provider.anon.request(m, p, headers=dict(h)), 401, code
            )
            assert "api key" in body["detail"].lower()
    with tenant_http(provider, api_key) as http:
        assert http.get("/v1/heads").status_code == 200
        key_id = api_key.split("_")[1]
        tenant_id = next(
            t["tenant_id"] for t in provider.admin.get("/v1/admin/tenants").json() if t["name"] == "pytest-revoked"
        )
        assert provider.admin.delete(f"/v1/admin/tenants/{tenant_id}/api-keys/{key_id}").status_code == 204
        for method, path in endpoints:
            assert_api_error(http.request(method, path), 401, "api_key_revoked", "revoked")
        keys = provider.admin.get(f"/v1/admin/tenants/{tenant_id}/api-keys").json()
        assert [(k["key_id"], k["revoked"]) for k in keys] == [(key_id, True)]
        assert "api_key" not in keys[0], "the secret is shown once, at creation"
    # A tenant's key opens no admin endpoint; health and readiness need no key at all.
    assert_api_error(provider.http.get("/v1/admin/tenants"), 401, "unauthorized")
    assert provider.anon.get("/healthz").status_code == 200
    assert provider.anon.get("/readyz").status_code == 200


def test_a_disabled_tenant_is_403_until_enabled(provider: Any, secrets: Secrets) -> None:
    tenant_id, api_key = new_tenant(provider, secrets, "pytest-disabled")
    with tenant_http(provider, api_key) as http:
        patched = provider.admin.patch(f"/v1/admin/tenants/{tenant_id}", json={"disabled": True})
        assert patched.status_code == 200 and patched.json()["disabled"] is True
        for send in (lambda: http.get("/v1/heads"), lambda: http.post("/v1/keys/challenges")):
            assert_refused_without_effect(provider, send, 403, "tenant_disabled", "disabled")
        assert provider.admin.patch(f"/v1/admin/tenants/{tenant_id}", json={"disabled": False}).status_code == 200
        assert http.get("/v1/heads").status_code == 200


def test_admin_manages_tenants(provider: Any, secrets: Secrets) -> None:
    tenant_id, _ = new_tenant(provider, secrets, "pytest-admin-view", queries_per_day=7)
    got = provider.admin.get(f"/v1/admin/tenants/{tenant_id}").json()
    assert got["name"] == "pytest-admin-view" and got["quotas"]["queries_per_day"] == 7
    assert got["effective_quotas"]["queries_per_day"] == 7 and got["effective_quotas"]["alignments_per_day"] > 0
    assert tenant_id in {t["tenant_id"] for t in provider.admin.get("/v1/admin/tenants").json()}
    assert_api_error(provider.admin.post("/v1/admin/tenants", json={"name": "pytest-admin-view"}), 409, "tenant_exists")
    assert_api_error(provider.admin.get("/v1/admin/tenants/t_missing"), 404, "unknown_tenant")
    assert_api_error(provider.admin.post("/v1/admin/tenants/t_missing/api-keys"), 404, "unknown_tenant")
    assert_api_error(
        provider.admin.delete(f"/v1/admin/tenants/{tenant_id}/api-keys/0000000000000000"), 404, "unknown_api_key"
    )
    assert_api_error(
        provider.admin.post("/v1/admin/tenants", json={"name": "x", "quotas": {"queries_per_day": -1}}),
        422,
        "invalid_request",
    )
    patched = provider.admin.patch(f"/v1/admin/tenants/{tenant_id}", json={"quotas": {"rate_burst": 3}}).json()
    assert patched["quotas"]["queries_per_day"] is None and patched["quotas"]["rate_burst"] == 3


# --------------------------------------------------------------------------- ownership


def test_another_tenants_ids_answer_as_unknown_and_change_nothing(
    provider: Any, victim: Victim, mallory: httpx.Client, secrets: Secrets
) -> None:
    head = provider.http.get("/v1/heads/sst2").json()
    sha = provider.http.get("/v1/corpora/wiki").json()["sha256"]
    sid, kid = victim.session_id, victim.key_id
    frame, _ = classify_frame(victim.keys, head, kid, 2)
    unknown_frame, _ = classify_frame(victim.keys, head, UNKNOWN_KEY, 2)
    chunk = encode_frame(
        AlignmentChunkHeader(start=0, count=1, data_scale_bits=victim.layout.data_scale_bits), victim.blobs[:1]
    )

    def create(key_id: str) -> httpx.Response:
        body = AlignmentCreate(head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=key_id, feature_dim=8)
        return mallory.post("/v1/alignments", json=body.model_dump(mode="json"))

    def register(challenge_id: str) -> httpx.Response:
        header = inference_header("pytest-mallory").model_copy(update={"challenge_id": challenge_id})
        blob = victim.keys.public_key_bytes(victim.challenge_seed)
        return mallory.post("/v1/keys", content=encode_frame(header, [blob]), headers=FRAME)

    attempts = [
        (lambda: mallory.get(f"/v1/keys/{kid}"), lambda: mallory.get(f"/v1/keys/{UNKNOWN_KEY}"), kid, UNKNOWN_KEY),
        (
            lambda: mallory.delete(f"/v1/keys/{kid}"),
            lambda: mallory.delete(f"/v1/keys/{UNKNOWN_KEY}"),
            kid,
            UNKNOWN_KEY,
        ),
        (
            lambda: mallory.post("/v1/classify", content=frame, headers=FRAME),
            lambda: mallory.post("/v1/classify", content=unknown_frame, headers=FRAME),
            kid,
            UNKNOWN_KEY,
        ),
        (lambda: create(victim.alignment_key_id), lambda: create(UNKNOWN_KEY), victim.alignment_key_id, UNKNOWN_KEY),
    ]
    for path in ("", "/result"):
        attempts.append(
            (
                lambda p=path: mallory.get(f"/v1/alignments/{sid}{p}"),
                lambda p=path: mallory.get(f"/v1/alignments/{UNKNOWN_SESSION}{p}"),
                sid,
                UNKNOWN_SESSION,
            )
        )
    attempts += [
        (
            lambda: mallory.put(f"/v1/alignments/{sid}/chunks", content=chunk, headers=FRAME),
            lambda: mallory.put(f"/v1/alignments/{UNKNOWN_SESSION}/chunks", content=chunk, headers=FRAME),
            sid,
            UNKNOWN_SESSION,
        ),
        (
            lambda: mallory.post(f"/v1/alignments/{sid}/compute"),
            lambda: mallory.post(f"/v1/alignments/{UNKNOWN_SESSION}/compute"),
            sid,
            UNKNOWN_SESSION,
        ),
        (
            lambda: mallory.delete(f"/v1/alignments/{sid}"),
            lambda: mallory.delete(f"/v1/alignments/{UNKNOWN_SESSION}"),
            sid,
            UNKNOWN_SESSION,
        ),
    ]
    for send, send_unknown, real, fake in attempts:
        body = assert_refused_without_effect(provider, send, 404, send_unknown().json()["error"], session_ids=(sid,))
        same_as_unknown(httpx.Response(404, json=body), send_unknown(), real, fake)
    # The victim's challenge: refused as unknown, and not spent (its owner can still use it).
    same_as_unknown(register(victim.challenge_id), register(UNKNOWN_CHALLENGE), victim.challenge_id, UNKNOWN_CHALLENGE)
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as pc:
        header = inference_header().model_copy(update={"challenge_id": victim.challenge_id})
        spare = pc.register_key(header, victim.keys.public_key_bytes(victim.challenge_seed))
        secrets.add(spare.key_id)
        pc.revoke_key(spare.key_id)


def test_the_first_tenant_still_works(provider: Any, victim: Victim, client_agent: Any) -> None:
    """After the attacks: the victim's key classifies correctly, its session completes with the
    right X^T Y, and its agent answers."""
    head = provider.http.get("/v1/heads/sst2").json()
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as pc:
        layout = LinearHeadLayout(n=victim.keys.he.n, d=head["dim"], k=head["num_classes"])
        x = np.random.default_rng(3).normal(0.0, 0.05, size=(2, head["dim"]))
        header = ClassifyHeader(head_id="sst2", key_id=victim.key_id, num_queries=2, query_scale_bits=QUERY_SCALE_BITS)
        reply, out, _, _ = pc.classify(header, encrypt_queries(victim.keys, x, layout), max_blob_bytes=1 << 20)
        ref = np.asarray(
            provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": x.tolist()}).json()[
                "logits"
            ]
        )
        assert float(np.max(np.abs(decrypt_logits(victim.keys, reply, out) - ref))) < 1e-3

        sid = victim.session_id
        half = max(1, len(victim.blobs) // 2)
        rest = victim.blobs[half:]
        if rest:
            pc.upload_chunk(
                sid,
                AlignmentChunkHeader(start=half, count=len(rest), data_scale_bits=victim.layout.data_scale_bits),
                rest,
            )
        pc.start_compute(sid)
        session = poll_until(
            lambda: pc.session(sid), lambda s: s.state != AlignmentState.computing, deadline_s=300, what="alignment"
        )
        assert session.state == AlignmentState.done, session.error
        result_header, blobs = pc.alignment_result(sid, max_blob_bytes=1 << 21)
        xty = decrypt_cross_covariance(victim.alignment, result_header, blobs)
        assert xty.shape == (FEATURE_DIM, head["dim"])
        pc.delete_session(sid)
    assert client_agent.http.get("/readyz").status_code == 200
    assert client_agent.http.get("/v1/maps").status_code == 200


# --------------------------------------------------------------------------- budgets


def seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC) - now).total_seconds()


def assert_retry_after(resp: httpx.Response, low: float, high: float) -> None:
    value = int(resp.headers["retry-after"])
    assert low <= value <= high, f"Retry-After {value} not in [{low}, {high}]"


@pytest.fixture(scope="module")
def budgeted(provider: Any, secrets: Secrets) -> Iterator[dict[str, Any]]:
    """A tenant with 3 queries a day, one alignment session a day, and an inference key."""
    tenant_id, api_key = new_tenant(provider, secrets, "pytest-budget", queries_per_day=3, alignments_per_day=1)
    keys = ClientKeys.generate(PSET)
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=api_key) as pc:
        key = register_seeded(pc, keys, inference_header("pytest-budget"))
    secrets.add(key.key_id)
    with tenant_http(provider, api_key) as http:
        yield {"tenant_id": tenant_id, "api_key": api_key, "http": http, "keys": keys, "key_id": key.key_id}


def test_the_daily_query_quota_is_429_and_charges_nothing(provider: Any, budgeted: dict[str, Any]) -> None:
    http, keys, key_id = budgeted["http"], budgeted["keys"], budgeted["key_id"]
    head = http.get("/v1/heads/sst2").json()
    two, _ = classify_frame(keys, head, key_id, 2)
    one, _ = classify_frame(keys, head, key_id, 1)
    ok = http.post("/v1/classify", content=two, headers=FRAME)
    assert ok.status_code == 200, ok.text
    budgeted["request_ids"] = [ok.headers["x-request-id"]]
    body = assert_refused_without_effect(
        provider, lambda: http.post("/v1/classify", content=two, headers=FRAME), 429, "query_quota_exceeded", "sst2"
    )
    assert "3 queries per day" in body["detail"]
    refused = http.post("/v1/classify", content=two, headers=FRAME)
    assert_retry_after(refused, seconds_to_utc_midnight() - 60, seconds_to_utc_midnight() + 60)
    last = http.post("/v1/classify", content=one, headers=FRAME)  # exactly the third query still fits
    assert last.status_code == 200, last.text
    budgeted["request_ids"].append(last.headers["x-request-id"])
    assert_api_error(http.post("/v1/classify", content=one, headers=FRAME), 429, "query_quota_exceeded")
    usage = http.get("/v1/usage").json()
    assert usage["queries"] == [{"head_id": "sst2", "used": 3, "limit": 3, "remaining": 0}]
    assert usage["queries_per_day"] == 3 and usage["day"] == datetime.now(UTC).date().isoformat()


def test_the_daily_alignment_quota_is_429(provider: Any, budgeted: dict[str, Any], secrets: Secrets) -> None:
    http = budgeted["http"]
    alignment = ClientKeys.generate(PSET)
    bits = stride_bits_for(alignment.he.n, FEATURE_DIM)
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=budgeted["api_key"]) as pc:
        key = register_seeded(
            pc,
            alignment,
            KeyRegistrationHeader(
                client_name="pytest-budget",
                purpose=KeyPurpose.alignment,
                parameter_set=PSET,
                galois_elements=trace_galois_elements(alignment.he.n, bits),
            ),
            bits,
        )
    secrets.add(key.key_id)
    sha = http.get("/v1/corpora/wiki").json()["sha256"]
    body = AlignmentCreate(head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=key.key_id, feature_dim=8)
    first = http.post("/v1/alignments", json=body.model_dump(mode="json"))
    assert first.status_code == 201, first.text
    secrets.add(first.json()["session_id"])
    refused = assert_refused_without_effect(
        provider,
        lambda: http.post("/v1/alignments", json=body.model_dump(mode="json")),
        429,
        "alignment_quota_exceeded",
    )
    assert "1 alignment sessions" in refused["detail"]
    resp = http.post("/v1/alignments", json=body.model_dump(mode="json"))
    assert_retry_after(resp, seconds_to_utc_midnight() - 60, seconds_to_utc_midnight() + 60)
    usage = http.get("/v1/usage").json()
    assert usage["alignments"] == {"used": 1, "limit": 1, "remaining": 0}
    assert http.delete(f"/v1/alignments/{first.json()['session_id']}").status_code == 204
    assert http.get("/v1/usage").json()["alignments"]["used"] == 1, "a deleted session still counts for the day"


def test_storage_quota_is_429_and_freed_by_revoking(provider: Any, secrets: Secrets) -> None:
    keys = ClientKeys.generate(PSET)
    key_bytes = len(keys.public_key_bytes(bytes(32)))
    _, api_key = new_tenant(provider, secrets, "pytest-storage", storage_bytes=key_bytes + key_bytes // 2)
    with (
        ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=api_key) as pc,
        tenant_http(provider, api_key) as http,
    ):
        first = register_seeded(pc, keys, inference_header("pytest-storage"))
        secrets.add(first.key_id)
        used = http.get("/v1/usage").json()["storage_bytes"]["used"]
        assert 0.9 * key_bytes < used < 1.1 * key_bytes, "a key's bytes count (serialised sizes vary a little)"
        challenge = pc.key_challenge()
        secrets.add(challenge.challenge_id)
        header = inference_header("pytest-storage").model_copy(update={"challenge_id": challenge.challenge_id})
        frame = encode_frame(header, [keys.public_key_bytes(bytes.fromhex(challenge.seed))])
        body = assert_refused_without_effect(
            provider,
            lambda: http.post("/v1/keys", content=frame, headers=FRAME),
            429,
            "storage_quota_exceeded",
            "storage",
        )
        assert "revoke" in body["detail"]
        resp = http.post("/v1/keys", content=frame, headers=FRAME)
        assert int(resp.headers["retry-after"]) > 0
        pc.revoke_key(first.key_id)
        assert http.get("/v1/usage").json()["storage_bytes"]["used"] == 0, "a revoked key frees its storage"
        again = http.post("/v1/keys", content=frame, headers=FRAME)  # the refused challenge was not spent
        assert again.status_code == 201, again.text
        secrets.add(again.json()["key_id"])


def test_the_rate_limit_is_429_with_retry_after(provider: Any, secrets: Secrets) -> None:
    _, api_key = new_tenant(provider, secrets, "pytest-rate", rate_per_second=0.01, rate_burst=2)
    with tenant_http(provider, api_key) as http:
        for _ in range(2):
            resp = http.post("/v1/keys/challenges")
            assert resp.status_code == 201
            secrets.add(resp.json()["challenge_id"], resp.json()["seed"])
        refused = assert_refused_without_effect(
            provider, lambda: http.post("/v1/keys/challenges"), 429, "rate_limited", "rate limit"
        )
        assert "creations" in refused["detail"]
        resp = http.post("/v1/keys/challenges")
        assert_retry_after(resp, 1, math.ceil(1 / 0.01))
        assert http.get("/v1/heads").status_code == 200, "reading is not rate limited"


# --------------------------------------------------------------------------- usage and audit


def test_usage_and_audit_say_what_the_tenant_did(provider: Any, budgeted: dict[str, Any]) -> None:
    tenant_id = budgeted["tenant_id"]
    mine = budgeted["http"].get("/v1/usage").json()
    admins = provider.admin.get(f"/v1/admin/tenants/{tenant_id}/usage").json()
    assert mine == admins and mine["tenant_id"] == tenant_id
    assert mine["storage_bytes"]["used"] > 0 and mine["storage_bytes"]["remaining"] > 0
    entries = provider.admin.get("/v1/admin/audit", params={"tenant_id": tenant_id}).json()["entries"]
    actions = [(e["action"], e["subject"], e["count"]) for e in entries]
    assert actions[:3] == [
        ("tenant.created", None, 1),
        ("api_key.created", None, 1),
        ("key.registered", "inference", 1),
    ]
    classified = [e for e in entries if e["action"] == "classify"]
    assert [(e["subject"], e["count"]) for e in classified] == [("sst2", 2), ("sst2", 1)], (
        "refused requests leave no line"
    )
    assert [e["request_id"] for e in classified] == budgeted["request_ids"]
    assert [e["actor"] for e in entries[:2]] == ["admin", "admin"] and classified[0]["actor"] == "tenant"
    assert {"alignment.created", "alignment.deleted"} <= {e["action"] for e in entries}
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs)
    page = provider.admin.get("/v1/admin/audit", params={"tenant_id": tenant_id, "limit": 2}).json()
    assert [e["seq"] for e in page["entries"]] == seqs[:2] and page["next_after"] == seqs[1]
    rest = provider.admin.get(
        "/v1/admin/audit", params={"tenant_id": tenant_id, "after": page["next_after"], "limit": 1000}
    ).json()
    assert [e["seq"] for e in rest["entries"]] == seqs[2:] and rest["next_after"] is None
    assert_api_error(provider.http.get("/v1/admin/audit"), 401, "unauthorized")


# --------------------------------------------------------------------------- logs


def test_no_id_or_api_key_reaches_the_provider_log(provider: Any, secrets: Secrets) -> None:
    """Runs last in this module: every id and credential it made, grepped for in the provider's log."""
    assert len(secrets.values) > 20, "the flows above ran and left their ids"
    log = provider.service.log_text()
    leaked = sorted(v for v in secrets.values if v in log)
    assert not leaked, f"ids or credentials in the provider's log: {leaked}"
    assert "/v1/alignments/{session_id}" in log and "/v1/keys/{key_id}" in log, "access lines name route templates"
    access = [line for line in log.splitlines() if re.search(r'"(GET|POST|PUT|DELETE|PATCH) ', line)]
    assert access and all("/v1/alignments/a_" not in line for line in access)
