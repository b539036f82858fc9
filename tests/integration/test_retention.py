"""Retention and garbage collection against a real provider and agent: many alignments leave no
trace on disk once swept, orphans older than the grace period go, live state stays.

The provider here sweeps only on request (`POST /v1/admin/gc`, gc_interval_seconds=0), so the tests
decide when a sweep happens and never wait for one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helix_it_helpers import admin_client, align, files_snapshot, stock_provider, tree_bytes

ALIGNMENTS = 20
#: Small alignments: a 64-dimensional client needs n >= 2 (64 + 1) samples.
SMALL_EMBEDDER = "wordllama:l2_supercat?dim=64"
SMALL_CORPUS = 160
#: The database (and its write-ahead log) may keep pages it freed: whole-directory tolerance.
DB_TOLERANCE_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def gc_provider(provider_service_factory: Any, pki: Any) -> Iterator[dict[str, Any]]:
    svc = provider_service_factory(
        "provider-gc",
        HELIX_PROVIDER_GC_INTERVAL_SECONDS="0",
        HELIX_PROVIDER_WORKERS="1",
        HELIX_PROVIDER_ALIGNMENT_WORKERS="2",
    )
    svc.start()
    ca = str(pki.ca.cert)
    with admin_client(svc.url, ca) as admin:
        api_key = stock_provider(admin, corpus_limit=SMALL_CORPUS)
        yield {
            "svc": svc,
            "admin": admin,
            "data_dir": Path(svc.env["HELIX_PROVIDER_DATA_DIR"]),
            "api_key": api_key,
        }
    svc.stop()


@pytest.fixture(scope="module")
def gc_agent(client_agent_factory: Any, gc_provider: dict[str, Any]) -> Any:
    return client_agent_factory(
        "client-agent-gc",
        HELIX_CLIENT_PROVIDER_URL=gc_provider["svc"].url,
        HELIX_CLIENT_PROVIDER_API_KEY=gc_provider["api_key"],
        HELIX_CLIENT_EMBEDDER=SMALL_EMBEDDER,
    )


def sweep(admin: Any) -> dict[str, Any]:
    resp = admin.post("/v1/admin/gc")
    assert resp.status_code == 200, resp.text
    report: dict[str, Any] = resp.json()
    return report


def test_many_alignments_leave_the_disk_as_it_was(gc_provider: dict[str, Any], gc_agent: Any) -> None:
    admin, data = gc_provider["admin"], gc_provider["data_dir"]
    classify = {"head_id": "sst2", "texts": ["a fine film"]}
    assert align(gc_agent.http)["state"] == "done"  # live: the agent's map
    assert gc_agent.http.post("/v1/classify", json=classify).status_code == 200  # live: an inference key
    sweep(admin)
    base_total = tree_bytes(data)
    base_files = files_snapshot(data / "blobs"), files_snapshot(data / "sessions")
    heads, corpora = admin.get("/v1/admin/heads").json(), admin.get("/v1/corpora").json()
    clients = admin.get("/v1/admin/clients").json()

    with ThreadPoolExecutor(2) as pool:  # the agent runs two alignments at once by default
        jobs = list(pool.map(lambda _: align(gc_agent.http), range(ALIGNMENTS)))
    assert [j["state"] for j in jobs] == ["done"] * ALIGNMENTS, [j["error"] for j in jobs]

    grown = tree_bytes(data)
    report = sweep(admin)
    assert len(report["keys"]) == ALIGNMENTS, report  # the revoked single-use alignment keys
    assert report["bytes_freed"] > 0
    assert grown - tree_bytes(data) >= report["bytes_freed"] * 0.9
    # Every blob and ciphertext file is as before; the database may keep some freed pages.
    assert (files_snapshot(data / "blobs"), files_snapshot(data / "sessions")) == base_files
    assert tree_bytes(data) <= base_total + DB_TOLERANCE_BYTES, (base_total, grown, tree_bytes(data))
    # Live state untouched: heads, corpora, the agent's inference key (it still classifies).
    assert admin.get("/v1/admin/heads").json() == heads
    assert admin.get("/v1/corpora").json() == corpora
    assert admin.get("/v1/admin/clients").json() == clients
    assert gc_agent.http.post("/v1/classify", json=classify).status_code == 200
    assert sweep(admin)["bytes_freed"] == 0  # nothing left to collect


def test_orphans_go_after_the_grace_period_young_ones_stay(gc_provider: dict[str, Any]) -> None:
    admin, data = gc_provider["admin"], gc_provider["data_dir"]
    old = time.time() - 2 * 3600  # older than the default grace period (1 h)
    folder = data / "blobs" / "ff"
    folder.mkdir(mode=0o700, exist_ok=True)
    orphan, young, temp = folder / ("ff" * 32 + ".npy"), folder / ("fe" * 32 + ".npy"), folder / ".x.123.ab.tmp"
    for path in (orphan, young, temp):
        path.write_bytes(b"\0" * 1000)
    os.utime(orphan, (old, old))
    os.utime(temp, (old, old))
    stray = data / "sessions" / "a_000000000000000000000000"
    stray.mkdir(parents=True, mode=0o700)
    (stray / "000000.ct").write_bytes(b"\0" * 500)
    report = sweep(admin)
    assert (report["blobs"], report["temp_files"], report["session_folders"]) == (1, 1, 1), report
    assert report["bytes_freed"] == 2500
    assert not orphan.exists() and not temp.exists() and not stray.exists()
    assert young.exists(), "a blob younger than the grace period may be about to be named by a record"
    young.unlink()


def test_the_sweep_is_admin_only(gc_provider: dict[str, Any], pki: Any) -> None:
    from helix_it_helpers import https_client

    with https_client(gc_provider["svc"].url, str(pki.ca.cert)) as anonymous:
        assert anonymous.post("/v1/admin/gc").status_code == 401
