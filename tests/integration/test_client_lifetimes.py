"""What the client agent keeps between requests, through real daemons.

- The inference key lives in memory: after the first classification the agent's key files can be
  garbled or deleted and classification still works with the same key (the provider sees no new one).
- A key the provider no longer accepts (revoked: 404, expired: 410) is replaced once, and the
  request succeeds; requests arriving together at a fresh agent register one key, not one each.
- Head metadata is cached, but a head the provider no longer has is evicted: a deleted and re-created
  head is used with its new classes.
- Alignment jobs are bounded (429 beyond the running limit) and kept on disk: after a restart of the
  agent, finished jobs keep their state and map, and a job that was running reads as failed.

Maps for classification are written straight into the agent's map store (zero weights, so logits are
the head's bias): these tests are about lifetimes, not accuracy, and need no alignment run for that.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helix_it_helpers import assert_api_error, create_tenant, https_client, poll_until

from client_agent.maps import MapStore
from helix_alignment import AffineMap
from helix_embeddings import load_embedder

ALIGNMENT_DEADLINE_S = 240.0
TEXT = "a warm , funny and moving film ."


@pytest.fixture(scope="module")
def wordllama() -> Any:
    return load_embedder("wordllama")


@pytest.fixture(scope="module")
def agent(client_agent_factory: Any) -> Iterator[Any]:
    a = client_agent_factory("client-agent-lifetimes", HELIX_CLIENT_CLIENT_NAME="pytest-lifetimes-agent")
    yield a
    a.close()


def save_map(agent: Any, provider_url: str, head: dict[str, Any], wordllama: Any) -> str:
    stored = MapStore(Path(agent.data_dir) / "maps").save(
        {
            "provider_url": provider_url,
            "head_id": head["id"],
            "corpus_id": "none",
            "corpus_sha256": "0" * 64,
            "client_model_id": wordllama.model_id,
            "provider_model_id": "p",
            "parameter_set": "ckks-n8192-q200",
            "ridge_lambda": 1e-4,
            "num_samples": 1,
            "include_head_texts": False,
            "created_at": datetime.now(UTC).isoformat(),
            "alignment_seconds": 0.0,
            "bytes_sent": 0,
            "bytes_received": 0,
        },
        AffineMap(np.zeros((wordllama.dim, head["dim"])), np.zeros(head["dim"])),
    )
    return stored.meta.map_id


def classify(agent: Any, head_id: str, map_id: str, texts: list[str] | None = None) -> dict[str, Any]:
    resp = agent.http.post("/v1/classify", json={"texts": texts or [TEXT], "head_id": head_id, "map_id": map_id})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def listed_keys(provider: Any, client_name: str) -> list[str]:
    """The client's unrevoked keys, as the provider's admin API lists them."""
    clients = provider.admin.get("/v1/admin/clients").json()
    return sorted(k["key_id"] for c in clients if c["client_name"] == client_name for k in c["keys"])


def registered_keys(provider: Any, client_name: str) -> list[str]:
    """Every key the client ever registered (revoked ones included), from the provider's database."""
    conn = sqlite3.connect(f"file:{provider.db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT key_id FROM keys WHERE client_name = ?", (client_name,)).fetchall()
    finally:
        conn.close()
    return sorted(r[0] for r in rows)


def expire_key(db_path: Path, key_id: str) -> None:
    """Make a key expire, as time would (a second writer on the provider's WAL database)."""
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    try:
        assert conn.execute("UPDATE keys SET expires_at = ? WHERE key_id = ?", (past, key_id)).rowcount == 1
    finally:
        conn.close()


# --------------------------------------------------------------------------- inference keys


def test_the_inference_key_is_held_in_memory(provider: Any, agent: Any, wordllama: Any) -> None:
    head = provider.http.get("/v1/heads/sst2").json()
    map_id = save_map(agent, provider.url, head, wordllama)
    first = classify(agent, "sst2", map_id)
    assert [r["label"] for r in first["results"]][0] in head["class_names"]
    keys = registered_keys(provider, "pytest-lifetimes-agent")
    assert len(keys) == 1, keys
    keys_dir = Path(agent.data_dir) / "keys"
    files = sorted(p.name for p in keys_dir.iterdir())
    assert files == [f"{keys[0]}.json", f"{keys[0]}.sk"], files

    for path in keys_dir.iterdir():  # garbled: reading or parsing them now would fail the request
        path.write_bytes(b"\x00 not a key \xff")
    classify(agent, "sst2", map_id)
    for path in keys_dir.iterdir():  # gone: looking for them would register a new key
        path.unlink()
    again = classify(agent, "sst2", map_id)
    assert again["results"][0]["logits"] == pytest.approx(first["results"][0]["logits"], abs=1e-3)
    assert registered_keys(provider, "pytest-lifetimes-agent") == keys, "the agent registered another key"
    assert listed_keys(provider, "pytest-lifetimes-agent") == keys
    assert list(keys_dir.iterdir()) == [], "the agent wrote key files although it had its key"


def test_a_refused_key_is_replaced_once(provider: Any, agent: Any, wordllama: Any) -> None:
    head = provider.http.get("/v1/heads/sst2").json()
    map_id = save_map(agent, provider.url, head, wordllama)
    classify(agent, "sst2", map_id)
    before = registered_keys(provider, "pytest-lifetimes-agent")
    (old,) = listed_keys(provider, "pytest-lifetimes-agent")

    assert provider.http.delete(f"/v1/keys/{old}").status_code == 204  # revoked: the provider answers 404
    classify(agent, "sst2", map_id)
    after_revoke = registered_keys(provider, "pytest-lifetimes-agent")
    assert len(after_revoke) == len(before) + 1, "a revoked key must be replaced by exactly one new key"
    (new,) = listed_keys(provider, "pytest-lifetimes-agent")
    assert new != old and new in after_revoke

    expire_key(provider.db_path, new)  # expired: the provider answers 410
    classify(agent, "sst2", map_id)
    after_expiry = registered_keys(provider, "pytest-lifetimes-agent")
    assert len(after_expiry) == len(after_revoke) + 1, "an expired key must be replaced by exactly one new key"
    newest = (set(after_expiry) - set(after_revoke)).pop()
    stored = {p.stem for p in (Path(agent.data_dir) / "keys").glob("*.json")}
    assert stored == {newest}, "the refused keys' secrets are deleted, the new one is stored"


def test_simultaneous_first_requests_register_one_key(provider: Any, client_agent_factory: Any, wordllama: Any) -> None:
    burst = client_agent_factory("client-agent-burst", HELIX_CLIENT_CLIENT_NAME="pytest-burst-agent")
    try:
        head = provider.http.get("/v1/heads/sst2").json()
        map_id = save_map(burst, provider.url, head, wordllama)
        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(lambda i: classify(burst, "sst2", map_id, [f"{TEXT} {i}"]), range(8)))
        assert len(bodies) == 8
        assert len(registered_keys(provider, "pytest-burst-agent")) == 1
    finally:
        burst.close()


# --------------------------------------------------------------------------- head metadata


def upload_head(provider: Any, name: str, classes: list[str]) -> dict[str, Any]:
    rows = [
        {"text": f"{word} example number {i}", "label": c}
        for i in range(4)
        for word, c in zip(("good", "bad", "odd"), classes, strict=False)
    ]
    resp = provider.admin.post(
        "/v1/admin/heads/upload",
        params={"name": name, "class_names": ",".join(classes), "in_distribution_texts": 0},
        content="\n".join(json.dumps(r) for r in rows).encode(),
    )
    assert resp.status_code == 201, resp.text
    head: dict[str, Any] = resp.json()["head"]
    return head


def test_a_deleted_head_is_evicted(provider: Any, agent: Any, wordllama: Any) -> None:
    name = "lifetimes-head"
    try:
        head = upload_head(provider, name, ["pos", "neg"])
        map_id = save_map(agent, provider.url, head, wordllama)
        assert set(classify(agent, name, map_id)["results"][0]["probabilities"]) == {"pos", "neg"}
        assert provider.admin.delete(f"/v1/admin/heads/{name}").status_code == 204
        resp = agent.http.post("/v1/classify", json={"texts": [TEXT], "head_id": name, "map_id": map_id})
        assert_api_error(resp, 404, "unknown_head", name)
        head = upload_head(provider, name, ["pos", "neg", "mixed"])  # same name, other classes
        body = classify(agent, name, map_id)
        assert set(body["results"][0]["probabilities"]) == {"pos", "neg", "mixed"}
        assert len(body["results"][0]["logits"]) == 3
    finally:
        provider.admin.delete(f"/v1/admin/heads/{name}")


# --------------------------------------------------------------------------- alignment jobs


@pytest.fixture(scope="module")
def small_provider(provider_service_factory: Any, pki: Any, admin_headers: dict[str, str]) -> Iterator[Any]:
    """A provider of its own (it gets frozen), without validation folds, with a small head and corpus
    (130 passages + 8 head texts: enough for the agent's D = 64 under n >= 2 (D + 1))."""
    svc = provider_service_factory(
        "provider-lifetimes", HELIX_PROVIDER_WORKERS="1", HELIX_PROVIDER_ALIGNMENT_VALIDATION_FOLDS="0"
    )
    svc.start()
    admin = https_client(svc.url, str(pki.ca.cert), headers=admin_headers)
    try:
        resp = admin.post(
            "/v1/admin/heads", json={"name": "sst2", "dataset": "sst2", "max_examples": 100, "in_distribution_texts": 8}
        )
        assert resp.status_code == 201, resp.text
        resp = admin.post(
            "/v1/admin/corpora", json={"name": "small", "dataset": "wikipedia", "file": "passages.jsonl", "limit": 130}
        )
        assert resp.status_code == 201, resp.text
        _tenant_id, svc.api_key = create_tenant(admin, "pytest-lifetimes")
        yield svc
    finally:
        admin.close()
        svc.stop()


def start_job(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    resp = http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "small", **extra})
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()
    assert job["state"] == "running"
    return job


def finished_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = poll_until(
        lambda: http.get(f"/v1/alignments/{job_id}").json(),
        lambda j: j["state"] != "running",
        deadline_s=ALIGNMENT_DEADLINE_S,
        what=f"alignment job {job_id}",
        interval_s=0.1,
    )
    return job


def test_jobs_are_bounded_and_survive_a_restart(small_provider: Any, client_agent_factory: Any) -> None:
    agent = client_agent_factory(
        "client-agent-jobs",
        HELIX_CLIENT_PROVIDER_URL=small_provider.url,
        HELIX_CLIENT_PROVIDER_API_KEY=small_provider.api_key,
        HELIX_CLIENT_CLIENT_NAME="pytest-jobs-agent",
        HELIX_CLIENT_MAX_RUNNING_ALIGNMENTS="1",
        HELIX_CLIENT_EMBEDDER="wordllama?dim=64",
    )
    try:
        done = finished_job(agent.http, start_job(agent.http)["job_id"])
        assert done["state"] == "done" and done["map_id"], done
        failed = finished_job(agent.http, start_job(agent.http, map_method="ridge_cv")["job_id"])
        assert failed["state"] == "failed" and "validation folds" in failed["error"], failed

        provider_pid = small_provider.proc.pid
        running = start_job(agent.http)
        os.kill(provider_pid, signal.SIGSTOP)  # the job now waits on the provider: it cannot finish
        try:
            assert agent.http.get(f"/v1/alignments/{running['job_id']}").json()["state"] == "running"
            assert_api_error(
                agent.http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "small"}),
                429,
                "too_many_alignments",
                "running",
            )
            # A single-use key a run left behind (as a run cut short after registering its key does).
            keys_dir = Path(agent.data_dir) / "keys"
            (keys_dir / "k_leftover.json").write_text(
                json.dumps(
                    {
                        "key_id": "k_leftover",
                        "provider_url": small_provider.url,
                        "purpose": "alignment",
                        "parameter_set": "ckks-n8192-q200",
                        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                    }
                )
            )
            (keys_dir / "k_leftover.sk").write_bytes(b"secret")
            agent.service.stop()
        finally:
            os.kill(provider_pid, signal.SIGCONT)
        agent.service.start()

        jobs = {j["job_id"]: j for j in agent.http.get("/v1/alignments").json()}
        assert list(jobs) == [done["job_id"], failed["job_id"], running["job_id"]], "all jobs, oldest first"
        assert jobs[done["job_id"]] == done, "a finished job reads as it ended"
        assert jobs[failed["job_id"]] == failed
        interrupted = agent.http.get(f"/v1/alignments/{running['job_id']}").json()
        assert interrupted == jobs[running["job_id"]]
        assert interrupted["state"] == "failed" and interrupted["map_id"] is None
        assert "interrupted" in interrupted["error"] and "restart" in interrupted["error"]
        assert agent.http.get(f"/v1/maps/{done['map_id']}").status_code == 200
        assert sorted(p.name for p in (Path(agent.data_dir) / "jobs").iterdir()) == sorted(f"{j}.json" for j in jobs), (
            "one file per job, nothing half-written"
        )
        assert not list(keys_dir.glob("k_leftover.*")), "a left-over single-use key is deleted at start-up"

        again = finished_job(agent.http, start_job(agent.http)["job_id"])  # the interrupted job holds no slot
        assert again["state"] == "done", again
    finally:
        agent.close()
