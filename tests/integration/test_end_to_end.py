"""End to end through real daemons: secure alignment driven through the client agent's REST API,
then private classification through the agent, checked against plaintext.

The reference is computed outside the privacy protocol: the test embeds the same texts in-process
with the agent's embedder, maps them with the agent's stored map, and asks the provider's admin
endpoint for plaintext logits of exactly those vectors. Encrypted and plaintext logits must agree to
1e-3 (CKKS at scale 2^40 is far more precise than that) with the same argmax, on the batch path (one
classify call with 50 texts, spread over both HE workers) and on single-text calls.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import poll_until

from client_agent.maps import MapStore, StoredMap
from helix_alignment.methods import CLIENT_DEFAULT_METHOD, solve_method, stats_of
from helix_datasets import load_split
from helix_embeddings import load_embedder

ALIGNMENT_DEADLINE_S = 240.0
TOLERANCE = 1e-3
#: WordLlama at D = 128: an alignment on the 400 + 32 public texts needs n >= 2 (D + 1) = 258 samples
#: (the provider's disclosure guard); at its default D = 256 it would need 514.
CLIENT_EMBEDDER = "wordllama?dim=128"


@pytest.fixture(scope="module")
def wordllama() -> Any:
    return load_embedder(CLIENT_EMBEDDER)


@pytest.fixture(scope="module")
def client_agent(client_agent_factory: Any) -> Any:
    """This module's agent (named like the session's: the key checks below look for its name)."""
    return client_agent_factory("client-agent-e2e", HELIX_CLIENT_EMBEDDER=CLIENT_EMBEDDER)


@pytest.fixture(scope="module")
def aligned(client_agent: Any, provider: Any) -> dict[str, Any]:
    """Run one alignment through the agent's REST API; return the finished job and its map."""
    resp = client_agent.http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "wiki"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["state"] == "running" and job["head_id"] == "sst2" and job["corpus_id"] == "wiki"
    job = poll_until(
        lambda: client_agent.http.get(f"/v1/alignments/{job['job_id']}").json(),
        lambda j: j["state"] != "running",
        deadline_s=ALIGNMENT_DEADLINE_S,
        what="alignment job",
    )
    assert job["state"] == "done", f"alignment failed: {job['error']}"
    resp = client_agent.http.get(f"/v1/maps/{job['map_id']}")
    assert resp.status_code == 200, resp.text
    return {"job": job, "map": resp.json()}


@pytest.fixture(scope="module")
def stored_map(aligned: dict[str, Any], client_agent: Any) -> StoredMap:
    stored = MapStore(Path(client_agent.data_dir) / "maps").get(aligned["map"]["map_id"])
    assert stored is not None, "the agent reported a map that is not in its map store"
    return stored


@pytest.fixture(scope="module")
def sst2_test_texts(datasets_dir: Path) -> list[str]:
    return load_split(datasets_dir, "sst2", "test", limit=50, seed=7).texts


def reference_logits(provider: Any, stored: StoredMap, embedder: Any, texts: list[str]) -> np.ndarray:
    mapped = stored.affine.apply(embedder.embed(texts).astype(np.float64))
    resp = provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": mapped.tolist()})
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["logits"])


def agent_classify(client_agent: Any, texts: list[str], map_id: str) -> dict[str, Any]:
    resp = client_agent.http.post("/v1/classify", json={"texts": texts, "head_id": "sst2", "map_id": map_id})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["head_id"] == "sst2" and body["map_id"] == map_id
    assert [r["text_index"] for r in body["results"]] == list(range(len(texts)))
    return body


def assert_matches_plaintext(body: dict[str, Any], ref: np.ndarray, class_names: list[str]) -> None:
    assert body["output_mode"] == "logits"
    enc = np.asarray([r["logits"] for r in body["results"]])
    assert enc.shape == ref.shape
    diff = float(np.max(np.abs(enc - ref)))
    assert diff < TOLERANCE, f"encrypted logits differ from plaintext by up to {diff:.3g}"
    assert np.array_equal(np.argmax(enc, axis=1), np.argmax(ref, axis=1))
    for r, row in zip(body["results"], ref, strict=True):
        assert r["label"] == class_names[int(np.argmax(row))]
        assert r["ranking"] == [class_names[i] for i in np.argsort(-row, kind="stable")]
        probs = np.array([r["probabilities"][c] for c in class_names])
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert int(np.argmax(probs)) == int(np.argmax(row))


def test_alignment_job_and_map_metadata(aligned: dict[str, Any], provider: Any, wordllama: Any) -> None:
    job, meta = aligned["job"], aligned["map"]
    progress = job["progress"]
    assert progress["phase"] == "done"
    assert progress["total_ciphertexts"] >= 1 and progress["uploaded_ciphertexts"] == progress["total_ciphertexts"]
    info = provider.http.get("/v1/info").json()
    corpus = provider.http.get("/v1/corpora/wiki").json()
    assert progress["computed_columns"] == progress["total_columns"] == info["embedding_dim"]

    assert meta["map_id"] == job["map_id"]
    assert meta["provider_url"] == provider.url
    assert meta["head_id"] == "sst2" and meta["corpus_id"] == "wiki"
    assert meta["corpus_sha256"] == corpus["sha256"]
    assert meta["client_model_id"] == wordllama.model_id
    assert meta["provider_model_id"] == info["encoder_model_id"]
    assert meta["map_method"] == CLIENT_DEFAULT_METHOD  # the agent's default
    assert meta["ridge_lambda"] > 0  # the lambda the method chose (the plaintext check below refits with it)
    assert meta["num_samples"] == 400 + 32  # corpus plus the head's published texts
    assert meta["include_head_texts"] is True
    assert meta["source_dim"] == wordllama.dim and meta["target_dim"] == info["embedding_dim"]
    assert meta["bytes_sent"] > 0 and meta["bytes_received"] > 0


def test_alignment_key_is_revoked_and_session_gone(
    aligned: dict[str, Any], provider: Any, client_agent: Any, wordllama: Any
) -> None:
    """Alignment keys are single-use: after the job the provider lists no alignment key of the
    agent, the agent's key store holds no alignment secret key, and the provider no longer keeps
    the session (the agent deletes it once it has the result)."""
    clients = provider.admin.get("/v1/admin/clients").json()
    agent_keys = [k for c in clients if c["client_name"] == "pytest-agent" for k in c["keys"]]
    assert not [k for k in agent_keys if k["purpose"] == "alignment"], agent_keys
    keys_dir = Path(client_agent.data_dir) / "keys"
    metas = {p.stem: json.loads(p.read_text()) for p in keys_dir.glob("*.json")}
    assert {p.stem for p in keys_dir.glob("*.sk")} == set(metas), "secret keys and key metadata disagree"
    assert all(m["purpose"] == "inference" for m in metas.values()), metas
    conn = sqlite3.connect(f"file:{provider.db_path}?mode=ro", uri=True)
    try:
        left = conn.execute(
            "SELECT session_id, state FROM sessions WHERE client_model_id = ?", (wordllama.model_id,)
        ).fetchall()
    finally:
        conn.close()
    assert left == [], f"the agent's alignment session is still stored at the provider: {left}"


def test_batch_classify_matches_plaintext(
    aligned: dict[str, Any],
    stored_map: StoredMap,
    client_agent: Any,
    provider: Any,
    wordllama: Any,
    sst2_test_texts: list[str],
) -> None:
    texts = sst2_test_texts
    assert len(texts) == 50
    body = agent_classify(client_agent, texts, stored_map.meta.map_id)
    ref = reference_logits(provider, stored_map, wordllama, texts)
    head = provider.http.get("/v1/heads/sst2").json()
    assert_matches_plaintext(body, ref, head["class_names"])
    assert body["bytes_sent"] > 0 and body["bytes_received"] > 0
    # Without map_id the agent picks the newest map for this head and embedder: the same one.
    resp = client_agent.http.post("/v1/classify", json={"texts": texts[:3], "head_id": "sst2"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["map_id"] == stored_map.meta.map_id


def test_single_text_classify_matches_plaintext(
    aligned: dict[str, Any],
    stored_map: StoredMap,
    client_agent: Any,
    provider: Any,
    wordllama: Any,
    sst2_test_texts: list[str],
) -> None:
    head = provider.http.get("/v1/heads/sst2").json()
    texts = [sst2_test_texts[0], sst2_test_texts[17], "an utterly charming , funny and moving film ."]
    for text in texts:
        body = agent_classify(client_agent, [text], stored_map.meta.map_id)
        assert_matches_plaintext(body, reference_logits(provider, stored_map, wordllama, [text]), head["class_names"])


def test_secure_map_reproduces_plaintext_ridge(
    stored_map: StoredMap, public_alignment_texts: Any, wordllama: Any, sst2_test_texts: list[str]
) -> None:
    """The map fitted from decrypted X_aug^T Y equals the same method fitted on both parties'
    embeddings of the same public texts (corpus, then the head's published texts, in that order).
    The provider's side is recomputed in-process with its published encoder from the public texts."""
    pub = public_alignment_texts
    assert stored_map.meta.corpus_sha256 == pub.corpus_sha256
    x = wordllama.embed(pub.corpus_texts + pub.head_texts).astype(np.float64)
    y = np.vstack([pub.y_corpus, pub.y_head])
    meta = stored_map.meta
    params = (
        {"lam": meta.ridge_lambda}
        if meta.map_method == "ridge"
        else {k: v for k, v in meta.map_params.items() if k in ("kappa", "rank")}
    )
    ref, _ = solve_method(meta.map_method, stats_of(x, y), **params)  # the same method, on plaintext statistics
    assert stored_map.affine.weight.shape == ref.weight.shape
    # Compare the maps where they are used: on the alignment texts and on unseen texts.
    for name, probe in (
        ("alignment texts", x),
        ("sst2 test texts", wordllama.embed(sst2_test_texts).astype(np.float64)),
    ):
        got, want = stored_map.affine.apply(probe), ref.apply(probe)
        err = float(np.max(np.abs(got - want)))
        assert err < 1e-4, f"{name}: secure map outputs deviate from the plaintext fit by {err:.3g}"
    rel = np.linalg.norm(stored_map.affine.weight - ref.weight) / np.linalg.norm(ref.weight)
    assert rel < 1e-4, f"map weights deviate from the plaintext fit by {rel:.3g} (relative)"
