"""A provider restart keeps what it promised to keep: heads, corpora, registered keys and alignment
sessions live in its data directory (SQLite + blob store), not in the process.

A separate provider (own data dir, one HE worker) gets a tiny head and corpus, a client registers
keys and uploads an alignment chunk; the provider is stopped (SIGTERM, graceful) and a new process is
started on the same data dir and port. Everything must still be there and still work: the old
inference key classifies correctly, the half-way alignment session completes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import assert_api_error, bearer, create_tenant, https_client, poll_until, register_seeded

from client_agent.provider_client import ProviderClient
from helix_embeddings import load_embedder
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import CrossCovarianceLayout, LinearHeadLayout, stride_bits_for, trace_galois_elements
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


def public_state(
    url: str, ca: str, admin_headers: dict[str, str], api_key: str, key_ids: list[str], session_id: str
) -> dict[str, Any]:
    with https_client(url, ca, headers=bearer(api_key)) as http, https_client(url, ca, headers=admin_headers) as admin:
        state = {
            "heads": http.get("/v1/heads").json(),
            "head": http.get("/v1/heads/tiny").json(),
            "admin_heads": admin.get("/v1/admin/heads").json(),
            "corpora": http.get("/v1/corpora").json(),
            "corpus_texts": http.get("/v1/corpora/tiny-wiki/texts").json(),
            "clients": admin.get("/v1/admin/clients").json(),
            "keys": [http.get(f"/v1/keys/{k}").json() for k in key_ids],
            "session": http.get(f"/v1/alignments/{session_id}").json(),
        }
    return state


@pytest.fixture(scope="module")
def restarted(
    provider_service_factory: Any, tmp_path_factory: pytest.TempPathFactory, admin_headers: dict[str, str]
) -> Iterator[dict[str, Any]]:
    svc = provider_service_factory("provider-restart", HELIX_PROVIDER_WORKERS="1")
    svc.start()
    ca = str(svc.ca_cert)
    with https_client(svc.url, ca, headers=admin_headers) as admin:
        resp = admin.post(
            "/v1/admin/heads", json={"name": "tiny", "dataset": "sst2", "max_examples": 200, "in_distribution_texts": 0}
        )
        assert resp.status_code == 201, resp.text
        resp = admin.post("/v1/admin/corpora", json={"name": "tiny-wiki", "dataset": "wikipedia", "limit": 50})
        assert resp.status_code == 201, resp.text
        _tenant_id, api_key = create_tenant(admin, "pytest-restart")

    secrets_dir = tmp_path_factory.mktemp("restart-client-keys")
    with ProviderClient(svc.url, Path(ca), api_key=api_key) as pc:
        inference = ClientKeys.generate(PSET)
        inf_key = register_seeded(
            pc,
            inference,
            KeyRegistrationHeader(client_name="pytest-restart", purpose=KeyPurpose.inference, parameter_set=PSET),
        )
        inference.save(secrets_dir / "inference.sk")
        alignment = ClientKeys.generate(PSET)
        bits = stride_bits_for(alignment.he.n, FEATURE_DIM)
        al_key = register_seeded(
            pc,
            alignment,
            KeyRegistrationHeader(
                client_name="pytest-restart",
                purpose=KeyPurpose.alignment,
                parameter_set=PSET,
                galois_elements=trace_galois_elements(alignment.he.n, bits),
            ),
            bits,
        )
        corpus = pc.corpus("tiny-wiki")
        session = pc.create_alignment(
            AlignmentCreate(
                head_id="tiny",
                corpus_id="tiny-wiki",
                corpus_sha256=corpus.sha256,
                key_id=al_key.key_id,
                feature_dim=FEATURE_DIM,
            )
        )
        assert session.num_samples == 50
        layout = CrossCovarianceLayout.for_key(alignment.he.n, FEATURE_DIM, 50, bits)
        x = np.hstack([np.random.default_rng(11).uniform(-1, 1, size=(50, FEATURE_DIM - 1)), np.ones((50, 1))])
        blobs = encrypt_alignment_data(alignment, x, layout, 0, layout.num_ciphertexts)
        session = pc.upload_chunk(
            session.session_id,
            AlignmentChunkHeader(start=0, count=len(blobs), data_scale_bits=layout.data_scale_bits),
            blobs,
        )
        assert session.received_ciphertexts == session.num_ciphertexts

    key_ids = [inf_key.key_id, al_key.key_id]
    before = public_state(svc.url, ca, admin_headers, api_key, key_ids, session.session_id)
    first_run_log = svc.log_path
    rc = svc.stop()
    svc.start()  # a new process on the same data dir and port
    assert svc.starts == 2
    yield {
        "svc": svc,
        "ca": ca,
        "api_key": api_key,
        "before": before,
        "stop_rc": rc,
        "first_log": first_run_log,
        "key_ids": key_ids,
        "inference_key_id": inf_key.key_id,
        "inference_secret": secrets_dir / "inference.sk",
        "alignment": alignment,
        "session_id": session.session_id,
        "x": x,
    }
    svc.stop()


def test_first_process_shut_down_gracefully(restarted: dict[str, Any]) -> None:
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit too.
    assert restarted["stop_rc"] in (0, -signal.SIGTERM), f"provider exited with {restarted['stop_rc']} on SIGTERM"
    log = restarted["first_log"].read_text()
    assert "Application shutdown complete" in log and "Finished server process" in log


def test_heads_corpora_keys_and_sessions_survive(restarted: dict[str, Any], admin_headers: dict[str, str]) -> None:
    svc = restarted["svc"]
    after = public_state(
        svc.url, restarted["ca"], admin_headers, restarted["api_key"], restarted["key_ids"], restarted["session_id"]
    )
    before = restarted["before"]
    for part in ("heads", "head", "admin_heads", "corpora", "corpus_texts", "clients", "keys", "session"):
        assert after[part] == before[part], f"{part} changed across the restart"
    assert [h["id"] for h in after["heads"]] == ["tiny"]
    assert after["head"]["in_distribution_texts"] == 0
    assert [c["id"] for c in after["corpora"]] == ["tiny-wiki"] and after["corpora"][0]["size"] == 50
    listed = {k["key_id"] for c in after["clients"] for k in c["keys"]}
    assert set(restarted["key_ids"]) <= listed
    assert after["session"]["state"] == "receiving"


def test_old_inference_key_still_classifies(restarted: dict[str, Any], admin_headers: dict[str, str]) -> None:
    svc, ca = restarted["svc"], restarted["ca"]
    keys = ClientKeys.load(PSET, restarted["inference_secret"])  # the client restarted too
    with (
        ProviderClient(svc.url, Path(ca), api_key=restarted["api_key"]) as pc,
        https_client(svc.url, ca, headers=admin_headers) as admin,
    ):
        head = pc.head("tiny")
        layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
        x = np.random.default_rng(21).normal(0.0, 0.05, size=(4, head.dim))
        header = ClassifyHeader(
            head_id="tiny", key_id=restarted["inference_key_id"], num_queries=4, query_scale_bits=QUERY_SCALE_BITS
        )
        reply, out, _, _ = pc.classify(header, encrypt_queries(keys, x, layout), max_blob_bytes=1 << 20)
        logits = decrypt_logits(keys, reply, out)
        resp = admin.post("/v1/admin/heads/tiny/reference-logits", json={"embeddings": x.tolist()})
        assert resp.status_code == 200, resp.text
        ref = np.asarray(resp.json()["logits"])
    assert float(np.max(np.abs(logits - ref))) < 1e-3
    assert np.array_equal(np.argmax(logits, axis=1), np.argmax(ref, axis=1))


def test_interrupted_alignment_session_completes_after_restart(restarted: dict[str, Any]) -> None:
    """The uploaded ciphertexts were persisted: compute now and check the decrypted X^T Y against
    the plaintext product with the provider's (public) encoder on the corpus texts."""
    svc, ca = restarted["svc"], restarted["ca"]
    sid = restarted["session_id"]
    with ProviderClient(svc.url, Path(ca), api_key=restarted["api_key"]) as pc:
        pc.start_compute(sid)
        session = poll_until(
            lambda: pc.session(sid),
            lambda s: s.state != AlignmentState.computing,
            deadline_s=120,
            what="alignment after restart",
        )
        assert session.state == AlignmentState.done, session.error
        header, blobs = pc.alignment_result(sid, max_blob_bytes=1 << 20)
        xty = decrypt_cross_covariance(restarted["alignment"], header, blobs)
        texts, _ = pc.corpus_texts("tiny-wiki")
        info = pc.info()
    encoder = load_embedder("minilm")
    assert encoder.model_id == info.encoder_model_id
    y = encoder.embed(texts).astype(np.float64)
    err = float(np.max(np.abs(xty - restarted["x"].T @ y)))
    assert err < 1e-4, f"X^T Y after restart deviates from plaintext by {err:.3g}"


def test_admin_disabled_without_token(
    restarted: dict[str, Any], provider_service_factory: Any, admin_headers: dict[str, str]
) -> None:
    """The same data dir served without HELIX_PROVIDER_ADMIN_TOKEN: admin endpoints answer 403
    admin_disabled (with or without a token), tenant endpoints still serve the persisted head to the
    persisted tenant (and refuse anyone else)."""
    svc = restarted["svc"]
    svc.stop()
    data_dir = Path(svc.env["HELIX_PROVIDER_DATA_DIR"])
    bare = provider_service_factory("provider-no-admin", data_dir=data_dir, port=svc.port, HELIX_PROVIDER_WORKERS="1")
    bare.env.pop("HELIX_PROVIDER_ADMIN_TOKEN")
    bare.start()
    try:
        with (
            https_client(bare.url, restarted["ca"]) as anon,
            https_client(bare.url, restarted["ca"], headers=admin_headers) as admin,
            https_client(bare.url, restarted["ca"], headers=bearer(restarted["api_key"])) as tenant,
        ):
            for client in (anon, admin):
                assert_api_error(client.get("/v1/admin/heads"), 403, "admin_disabled", "HELIX_PROVIDER_ADMIN_TOKEN")
                assert_api_error(
                    client.post("/v1/admin/heads", json={"name": "x", "dataset": "sst2"}), 403, "admin_disabled"
                )
            assert tenant.get("/v1/heads/tiny").status_code == 200
            assert_api_error(anon.get("/v1/heads/tiny"), 401, "api_key_required")
    finally:
        bare.stop()
