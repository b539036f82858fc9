"""Head trainings as admin jobs, against a real provider of their own (one training at a time):
`Prefer: respond-async` answers 202 with a job that reaches `succeeded` and whose head classifies;
a cancelled training's process is gone when DELETE answers and leaves no head, blob or temporary file;
a second training while one runs is refused with 429; a provider killed mid-training reports the job
failed after its restart; a training past its timeout fails cleanly, waited for (504) or as a job.

Long trainings are the full SST-2 training split (20,000 texts): embedding them takes far longer than
the few polls each test needs before it acts; the training process exists from the job's start."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helix_it_helpers import (
    admin_client,
    assert_api_error,
    create_tenant,
    files_snapshot,
    https_client,
    poll_until,
    register_seeded,
)

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import LinearHeadLayout
from shared_protocol.messages import ClassifyHeader, KeyPurpose, KeyRegistrationHeader

PSET = "ckks-n8192-q200"
ASYNC = {"Prefer": "respond-async"}
LONG_TRAINING = {"dataset": "sst2", "max_examples": 20000, "in_distribution_texts": 0}
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def jobs_provider(provider_service_factory: Any, pki: Any) -> Iterator[dict[str, Any]]:
    svc = provider_service_factory(
        "provider-jobs",
        HELIX_PROVIDER_WORKERS="1",
        HELIX_PROVIDER_ALIGNMENT_WORKERS="1",
        HELIX_PROVIDER_GC_INTERVAL_SECONDS="0",
        HELIX_PROVIDER_MAX_TRAINING_JOBS="1",
    )
    svc.start()
    admin = admin_client(svc.url, str(pki.ca.cert))
    try:
        yield {"svc": svc, "admin": admin, "data_dir": Path(svc.env["HELIX_PROVIDER_DATA_DIR"])}
    finally:
        admin.close()
        svc.stop()


def follow(admin: httpx.Client, job_id: str, done: Any, what: str, deadline_s: float = 600) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        resp = admin.get(f"/v1/admin/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    return poll_until(fetch, done, deadline_s=deadline_s, what=what)


def start_job(admin: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = admin.post("/v1/admin/heads", json=body, headers=ASYNC)
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()
    assert resp.headers["location"] == f"/v1/admin/jobs/{job['job_id']}"
    assert resp.headers["preference-applied"] == "respond-async"
    assert job["state"] in ("queued", "running") and job["head_id"] == body["name"]
    return job


def running_with_process(admin: httpx.Client, job_id: str) -> dict[str, Any]:
    job = follow(admin, job_id, lambda j: j["state"] in FINISHED or j["pid"] is not None, "the training's process")
    assert job["state"] == "running", job
    assert Path(f"/proc/{job['pid']}").exists()
    return job


def children(pid: int) -> set[int]:
    """The child processes of `pid` (every thread's), from /proc."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.update(int(c) for c in (task / "children").read_text().split())
    return out


def stored_files(data_dir: Path) -> list[tuple[str, int]]:
    """The provider's blobs (and any temporary file among them)."""
    return files_snapshot(data_dir / "blobs")


def temp_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*.tmp")]


def test_unknown_job_ids_are_404(jobs_provider: dict[str, Any]) -> None:
    admin = jobs_provider["admin"]
    assert_api_error(admin.get("/v1/admin/jobs/job_0000"), 404, "unknown_job", "job_0000")
    assert_api_error(admin.delete("/v1/admin/jobs/job_0000"), 404, "unknown_job", "job_0000")
    svc = jobs_provider["svc"]
    with https_client(svc.url, str(svc.ca_cert)) as anon:
        assert_api_error(anon.get("/v1/admin/jobs"), 401, "unauthorized")


def test_an_async_training_succeeds_and_its_head_classifies(jobs_provider: dict[str, Any]) -> None:
    admin, svc = jobs_provider["admin"], jobs_provider["svc"]
    body = {"name": "jobs-sst2", "dataset": "sst2", "max_examples": 200, "in_distribution_texts": 8}
    job = start_job(admin, body)
    done = follow(admin, job["job_id"], lambda j: j["state"] in FINISHED, "the async training")
    assert done["state"] == "succeeded", done
    assert done["error"] is None and done["pid"] is None and done["started_at"] and done["finished_at"]
    report = done["report"]
    assert report["head"]["id"] == "jobs-sst2" and report["train_examples"] == 200 and report["train_accuracy"] > 0.7
    listed = admin.get("/v1/admin/jobs").json()
    assert listed[0]["job_id"] == job["job_id"], "newest first"
    assert_api_error(admin.delete(f"/v1/admin/jobs/{job['job_id']}"), 409, "job_finished", "succeeded")

    # the head classifies: encrypted queries answer the plaintext logits of the trained head
    _, api_key = create_tenant(admin, "jobs")
    with ProviderClient(svc.url, svc.ca_cert, timeout=300, api_key=api_key) as pc:
        keys = ClientKeys.generate(PSET)
        key = register_seeded(
            pc,
            keys,
            KeyRegistrationHeader(client_name="pytest-jobs", purpose=KeyPurpose.inference, parameter_set=PSET),
        )
        head = pc.head("jobs-sst2")
        x = np.random.default_rng(3).normal(0.0, 0.05, size=(2, head.dim))
        blobs = encrypt_queries(keys, x, LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes))
        header = ClassifyHeader(head_id=head.id, key_id=key.key_id, num_queries=2, query_scale_bits=QUERY_SCALE_BITS)
        reply, out, _, _ = pc.classify(header, blobs, max_blob_bytes=1 << 20)
    ref = admin.post("/v1/admin/heads/jobs-sst2/reference-logits", json={"embeddings": x.tolist()})
    assert ref.status_code == 200, ref.text
    assert float(np.max(np.abs(decrypt_logits(keys, reply, out) - np.asarray(ref.json()["logits"])))) < 1e-4

    # the upload endpoint runs as a job too
    rows = b"\n".join(b'{"text": "%s", "label": %d}' % (t.encode(), i % 2) for i, t in enumerate(["a", "b", "c", "d"]))
    params = {"name": "jobs-upload", "in_distribution_texts": 0}
    resp = admin.post("/v1/admin/heads/upload", params=params, content=rows, headers=ASYNC)
    assert resp.status_code == 202, resp.text
    done = follow(admin, resp.json()["job_id"], lambda j: j["state"] in FINISHED, "the async upload training")
    assert done["state"] == "succeeded" and done["report"]["train_examples"] == 4, done


def test_cancel_kills_the_training_process_and_leaves_nothing(jobs_provider: dict[str, Any]) -> None:
    admin, data_dir = jobs_provider["admin"], jobs_provider["data_dir"]
    blobs_before = stored_files(data_dir)
    job = start_job(admin, {"name": "jobs-cancelled", **LONG_TRAINING})
    pid = running_with_process(admin, job["job_id"])["pid"]

    # one training at a time here: a second is refused while the first runs, waited for or not
    for headers in ({}, ASYNC):
        resp = admin.post("/v1/admin/heads", json={"name": "jobs-second", **LONG_TRAINING}, headers=headers)
        assert_api_error(resp, 429, "too_many_trainings", "max_training_jobs")
        assert int(resp.headers["retry-after"]) >= 1

    resp = admin.delete(f"/v1/admin/jobs/{job['job_id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "cancelled" and resp.json()["error_code"] == "job_cancelled"
    assert not Path(f"/proc/{pid}").exists(), "the training process outlived its cancellation"
    final = admin.get(f"/v1/admin/jobs/{job['job_id']}").json()
    assert final["state"] == "cancelled" and final["pid"] is None and final["report"] is None, final
    assert_api_error(admin.delete(f"/v1/admin/jobs/{job['job_id']}"), 409, "job_finished", "cancelled")
    assert admin.get("/v1/admin/heads").status_code == 200
    assert "jobs-cancelled" not in {r["head"]["id"] for r in admin.get("/v1/admin/heads").json()}
    assert stored_files(data_dir) == blobs_before
    assert temp_files(data_dir) == []


def test_a_provider_killed_mid_training_reports_the_job_failed_after_restart(jobs_provider: dict[str, Any]) -> None:
    admin, svc = jobs_provider["admin"], jobs_provider["svc"]
    job = start_job(admin, {"name": "jobs-interrupted", **LONG_TRAINING})
    pid = running_with_process(admin, job["job_id"])["pid"]
    os.killpg(svc.proc.pid, signal.SIGKILL)  # the server and everything it started
    svc.proc.wait(30)
    svc.start()
    final = admin.get(f"/v1/admin/jobs/{job['job_id']}").json()
    assert final["state"] == "failed" and final["error_code"] == "job_interrupted", final
    assert "interrupted by a provider restart" in final["error"] and final["pid"] is None
    assert not Path(f"/proc/{pid}").exists()
    assert "jobs-interrupted" not in {r["head"]["id"] for r in admin.get("/v1/admin/heads").json()}


def test_a_training_past_its_timeout_fails_cleanly(jobs_provider: dict[str, Any]) -> None:
    """With a 1 s limit a training of 2,000 texts never finishes (embedding them alone takes longer),
    whether the request waits for it or not."""
    admin, svc, data_dir = jobs_provider["admin"], jobs_provider["svc"], jobs_provider["data_dir"]
    svc.stop()
    svc.env["HELIX_PROVIDER_HEAD_TRAINING_TIMEOUT_SECONDS"] = "1"
    svc.start()
    blobs_before = stored_files(data_dir)
    workers = children(svc.proc.pid)
    body = {"name": "jobs-too-slow", "dataset": "sst2", "max_examples": 2000, "seed": 7, "in_distribution_texts": 0}

    resp = admin.post("/v1/admin/heads", json=body)
    assert_api_error(resp, 504, "training_timeout", "jobs-too-slow", "1 s", "nothing was stored")
    failed = admin.get("/v1/admin/jobs", params={"limit": 1}).json()[0]
    assert failed["head_id"] == "jobs-too-slow" and failed["state"] == "failed", failed
    assert failed["error_code"] == "training_timeout" and failed["timeout_seconds"] == 1.0
    assert children(svc.proc.pid) == workers, "the timed-out training's process is left running"

    job = start_job(admin, body)
    done = follow(admin, job["job_id"], lambda j: j["state"] in FINISHED, "the async training past its timeout")
    assert done["state"] == "failed" and done["error_code"] == "training_timeout", done
    assert "head_training_timeout_seconds" in done["error"]
    assert children(svc.proc.pid) == workers, "the timed-out training's process is left running"
    assert "jobs-too-slow" not in {r["head"]["id"] for r in admin.get("/v1/admin/heads").json()}
    assert stored_files(data_dir) == blobs_before
    assert temp_files(data_dir) == []
