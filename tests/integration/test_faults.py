"""Faults with real processes and SIGKILL: the provider killed under an agent's classify load (the
agent answers JSON 200 or 503, never 500 or a dropped connection, and recovers without a restart),
the agent killed mid-alignment (on restart it fails the job and releases the provider session and
key), and an agent that never returns (the provider's garbage collector reclaims its session)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from helix_it_helpers import admin_client, align, bearer, https_client, poll_until, stock_provider

from client_agent.jobs import INTERRUPTED

SMALL_EMBEDDER = "wordllama:l2_supercat?dim=64"  # n >= 2 (64 + 1) samples: a quick alignment
LOAD_THREADS = 4


def kill9(service: Any) -> None:
    """SIGKILL the daemon and everything it started (its process group: the HE workers too)."""
    os.killpg(service.proc.pid, signal.SIGKILL)
    service.proc.wait(30)


@pytest.fixture(scope="module")
def fault_provider(provider_service_factory: Any, pki: Any) -> Iterator[dict[str, Any]]:
    svc = provider_service_factory(
        "provider-faults",
        HELIX_PROVIDER_WORKERS="1",
        HELIX_PROVIDER_ALIGNMENT_WORKERS="1",
        HELIX_PROVIDER_GC_INTERVAL_SECONDS="0",
        HELIX_PROVIDER_SESSION_IDLE_TTL_SECONDS="0",
        HELIX_PROVIDER_RESULT_TTL_SECONDS="0",
    )
    svc.start()
    with admin_client(svc.url, str(pki.ca.cert)) as admin:
        api_key = stock_provider(admin, corpus_limit=160)
        big = {"name": "wiki-big", "dataset": "wikipedia", "file": "passages.jsonl", "limit": 600}
        assert admin.post("/v1/admin/corpora", json=big).status_code == 201
        yield {
            "svc": svc,
            "admin": admin,
            "data_dir": Path(svc.env["HELIX_PROVIDER_DATA_DIR"]),
            "api_key": api_key,
        }
    svc.stop()


def agent_for(factory: Any, provider: dict[str, Any], name: str, **overrides: str) -> Any:
    return factory(
        name,
        HELIX_CLIENT_PROVIDER_URL=provider["svc"].url,
        HELIX_CLIENT_PROVIDER_API_KEY=provider["api_key"],
        **overrides,
    )


def test_provider_killed_under_load_agent_answers_200_or_503_and_recovers(
    client_agent_factory: Any, fault_provider: dict[str, Any]
) -> None:
    svc = fault_provider["svc"]
    agent = agent_for(
        client_agent_factory,
        fault_provider,
        "client-agent-load",
        HELIX_CLIENT_EMBEDDER=SMALL_EMBEDDER,
        HELIX_CLIENT_PROVIDER_RETRY_SECONDS="2",
    )
    assert align(agent.http)["state"] == "done"
    replies: list[tuple[int, dict[str, Any], str | None] | str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(i: int) -> None:
        with https_client(agent.url, str(agent.service.ca_cert), timeout=120) as http:
            while not stop.is_set():
                try:
                    resp = http.post("/v1/classify", json={"head_id": "sst2", "texts": [f"text {i}"]})
                    entry: tuple[int, dict[str, Any], str | None] | str = (
                        resp.status_code,
                        resp.json(),
                        resp.headers.get("retry-after"),
                    )
                except (httpx.HTTPError, ValueError) as exc:  # a dropped connection or a non-JSON body
                    entry = repr(exc)
                with lock:
                    replies.append(entry)

    def count(status: int) -> int:
        with lock:
            return sum(1 for r in replies if isinstance(r, tuple) and r[0] == status)

    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        futures = [pool.submit(load, i) for i in range(LOAD_THREADS)]
        try:
            poll_until(lambda: count(200), lambda n: n >= 8, deadline_s=120, what="classify load before the kill")
            kill9(svc)
            poll_until(lambda: count(503), lambda n: n >= LOAD_THREADS, deadline_s=120, what="503s while away")
            ok_before_restart = count(200)
            svc.start()  # same port, same data directory; the agent is not restarted
            poll_until(
                lambda: count(200), lambda n: n >= ok_before_restart + 8, deadline_s=180, what="recovery after restart"
            )
        finally:
            stop.set()
            for f in futures:
                f.result()
    dropped = [r for r in replies if isinstance(r, str)]
    assert not dropped, dropped[:5]
    statuses = {r[0] for r in replies if isinstance(r, tuple)}
    assert statuses <= {200, 503}, statuses
    for _status, body, retry_after in (r for r in replies if isinstance(r, tuple) and r[0] == 503):
        assert body["error"] == "provider_unavailable" and svc.url in body["detail"], body
        assert retry_after == "2"
    agent.close()


def job_file(agent: Any) -> dict[str, Any]:
    files = list((Path(agent.data_dir) / "jobs").glob("j_*.json"))
    return json.loads(files[0].read_text()) if files else {}


def kill_mid_alignment(agent: Any) -> tuple[str, str, str]:
    """Start an alignment on the big corpus, SIGKILL the agent once its session exists; returns the
    job, session and alignment key ids."""
    resp = agent.http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "wiki-big"})
    assert resp.status_code == 202, resp.text
    job = poll_until(
        lambda: job_file(agent), lambda j: bool(j.get("session_id")), deadline_s=300, what="session recorded"
    )
    kill9(agent.service)
    assert job["state"] == "running", job
    keys = [json.loads(p.read_text()) for p in (Path(agent.data_dir) / "keys").glob("*.json")]
    (key_id,) = [k["key_id"] for k in keys if k["purpose"] == "alignment"]
    return job["job_id"], job["session_id"], key_id


def test_agent_killed_mid_alignment_releases_session_and_key_on_restart(
    client_agent_factory: Any, fault_provider: dict[str, Any]
) -> None:
    agent = agent_for(client_agent_factory, fault_provider, "client-agent-crash")
    http = https_client(
        fault_provider["svc"].url, str(agent.service.ca_cert), headers=bearer(fault_provider["api_key"])
    )
    job_id, session_id, key_id = kill_mid_alignment(agent)
    assert http.get(f"/v1/alignments/{session_id}").status_code == 200, "the session is left on the provider"
    assert http.get(f"/v1/keys/{key_id}").status_code == 200, "the key is left unrevoked"

    agent.service.start()
    job = agent.http.get(f"/v1/alignments/{job_id}").json()
    assert (job["state"], job["error"]) == ("failed", INTERRUPTED)
    poll_until(
        lambda: (http.get(f"/v1/alignments/{session_id}").status_code, http.get(f"/v1/keys/{key_id}").status_code),
        lambda codes: codes == (404, 404),
        deadline_s=60,
        what="session deleted and key revoked by the restarted agent",
    )
    assert not list((Path(agent.data_dir) / "keys").glob(f"{key_id}.*")), "the alignment secret key is kept"
    http.close()
    agent.close()


def test_a_client_that_never_returns_is_reclaimed_by_the_provider(
    client_agent_factory: Any, fault_provider: dict[str, Any]
) -> None:
    """The provider here treats a session idle for 0 s as abandoned and keeps results 0 s
    (session_idle_ttl_seconds=0, result_ttl_seconds=0); a computation is never interrupted, so the
    sweep comes once the session stopped computing."""
    agent = agent_for(client_agent_factory, fault_provider, "client-agent-gone")
    admin, data = fault_provider["admin"], fault_provider["data_dir"]
    tenant = https_client(
        fault_provider["svc"].url, str(agent.service.ca_cert), headers=bearer(fault_provider["api_key"])
    )
    _, session_id, key_id = kill_mid_alignment(agent)  # and never started again
    poll_until(
        lambda: tenant.get(f"/v1/alignments/{session_id}").json()["state"],
        lambda state: state != "computing",
        deadline_s=300,
        what="the abandoned session's computation",
    )
    report = admin.post("/v1/admin/gc").json()
    assert session_id in report["sessions"] and key_id in report["keys"], report
    assert tenant.get(f"/v1/alignments/{session_id}").status_code == 404
    assert tenant.get(f"/v1/keys/{key_id}").status_code == 404
    assert not (data / "sessions" / session_id).exists()
    tenant.close()
    agent.close()
