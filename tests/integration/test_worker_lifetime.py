"""The provider's HE worker processes must live as long as the server, whatever its request pattern.

Regression test for workers that die once the server has been idle for a while: a worker that asks
the kernel for a parent-death signal (prctl PR_SET_PDEATHSIG) gets it when the *thread* that spawned
it exits, not the server process. ProcessPoolExecutor (spawn context) starts workers lazily from the
thread that calls submit(); the lifespan's warm-up submits from a Starlette/anyio thread-pool
thread, and anyio stops thread-pool threads that were idle for 10 s when the next job arrives. The
pool is then broken for good and every classify or alignment request answers 500.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import register_seeded

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import LinearHeadLayout
from shared_protocol.messages import ClassifyHeader, KeyPurpose, KeyRegistrationHeader

ANYIO_THREAD_IDLE_S = 10.0  # anyio.to_thread: WorkerThread.MAX_IDLE_TIME


def child_pids(pid: int) -> set[int]:
    """Direct children of `pid`, from /proc (Linux)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.add(int(entry.name))
    return out


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


def test_he_workers_survive_an_idle_period(provider: Any, pc: ProviderClient) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    keys = ClientKeys.generate("ckks-n8192-q200")
    key = register_seeded(
        pc,
        keys,
        KeyRegistrationHeader(
            client_name="pytest-lifetime", purpose=KeyPurpose.inference, parameter_set="ckks-n8192-q200"
        ),
    )
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    x = np.random.default_rng(8).normal(0.0, 0.05, size=(2, head.dim))
    ref = np.asarray(
        provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": x.tolist()}).json()["logits"]
    )

    def classify() -> np.ndarray:
        header = ClassifyHeader(head_id="sst2", key_id=key.key_id, num_queries=2, query_scale_bits=QUERY_SCALE_BITS)
        reply, out, _, _ = pc.classify(header, encrypt_queries(keys, x, layout), max_blob_bytes=1 << 20)
        return decrypt_logits(keys, reply, out)

    assert float(np.max(np.abs(classify() - ref))) < 1e-3
    server_pid = provider.service.proc.pid
    before = child_pids(server_pid)
    assert len(before) >= 2, f"expected the HE workers among the server's children, found {before}"

    # The stimulus (not a synchronisation): leave the server idle for longer than anyio keeps idle
    # thread-pool threads, then send plain requests; sync endpoints run in that thread pool, which
    # now stops its idle threads.
    time.sleep(ANYIO_THREAD_IDLE_S + 1.0)
    for _ in range(6):
        assert provider.http.get("/v1/corpora").status_code == 200
        assert provider.http.get("/v1/heads/sst2").status_code == 200

    resp = provider.http.get("/v1/info")
    assert resp.status_code == 200
    try:
        logits = classify()
    except Exception as exc:  # noqa: BLE001 - report the worker state with the failure
        gone = before - child_pids(server_pid)
        raise AssertionError(
            f"classify failed after an idle period ({exc}); server children that died: {sorted(gone)}; "
            f"see the provider log {provider.service.log_path}"
        ) from exc
    assert float(np.max(np.abs(logits - ref))) < 1e-3
    assert child_pids(server_pid) == before, "HE worker processes died or were replaced during an idle period"
    assert os.path.exists(f"/proc/{server_pid}")
    pc.revoke_key(key.key_id)
