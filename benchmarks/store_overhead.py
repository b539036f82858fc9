"""python -m benchmarks.store_overhead: what the provider's Store costs one classify request, on SQLite and on
PostgreSQL through SQLAlchemy, against the raw-sqlite3 Store of an earlier revision, in the same run.

Why: every classify request reads its tenant's API key and record, the head and the client's key, is admitted
(rate bucket and daily counter, one transaction) and appends an audit line: six Store calls on the hot path.
Moving the Store to SQLAlchemy (for PostgreSQL) must not make these slow. Each system runs in its own process
(the baseline's code unpacked with `git archive`, so both import `provider_server.store` unchanged), makes a
tenant, API key, head and key, then times that sequence of calls per request: one thread (latency, per call and
per request), then several threads at once (requests per second: SQLite serialises in a lock, PostgreSQL's
pool runs them side by side). The PostgreSQL server is a private one started for the run (fsync on,
synchronous_commit off: like SQLite's WAL with synchronous=NORMAL, a crash may lose the last commits but
never corrupts), on loopback; or the database given by --postgres-url.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The last revision whose Store was raw sqlite3 (one connection and a lock, no SQLAlchemy).
DEFAULT_BASELINE = "05001ff"
CALLS = ("get_api_key", "get_tenant", "get_head", "get_key", "admit", "append_audit")
#: The benchmark's PostgreSQL settings: durable files, commits acknowledged before their WAL is flushed.
PG_SETTINGS = "-c synchronous_commit=off"


# --------------------------------------------------------------------------- one system, in its own process


def _worker(url: str, requests: int, threads: int) -> dict[str, Any]:
    """Time the classify path's Store calls on `url` with whichever `provider_server` is on the path."""
    from provider_server.store import (
        ApiKeyRecord,
        AuditRecord,
        Bucket,
        Charge,
        HeadRecord,
        KeyRecord,
        TenantRecord,
        TrainingReport,
        open_store,
    )
    from shared_protocol.messages import KeyPurpose

    tag = secrets.token_hex(4)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    store = open_store(url)
    open_s = time.perf_counter() - t0
    tenant, api_key, head, key = f"t_{tag}", f"ak_{tag}", f"h_{tag}", f"k_{tag}"
    store.add_tenant(TenantRecord(tenant, f"bench-{tag}", now))
    store.add_api_key(ApiKeyRecord(api_key, tenant, "ab" * 32, now))
    store.add_head(
        HeadRecord(
            id=head,
            name=head,
            task="sentiment",
            class_names=("negative", "positive"),
            dim=384,
            num_classes=2,
            created_at=now,
            weights_blob="w.npy",
            bias_blob="b.npy",
            texts=("a film",) * 32,
            texts_embeddings_blob="t.npy",
            encoder_model_id="minilm",
            report=TrainingReport(train_examples=400, train_accuracy=0.9),
        )
    )
    store.add_key(
        KeyRecord(
            key_id=key,
            client_name="bench",
            purpose=KeyPurpose.inference,
            parameter_set="ckks-n8192-q200",
            fingerprint="cd" * 32,
            created_at=now,
            expires_at=now + timedelta(days=1),
            public_key_blob="pk",
            tenant_id=tenant,
            stored_bytes=1000,
        )
    )
    bucket = Bucket("classify", rate_per_second=1e9, burst=10**9)  # checked and charged, never refusing
    day = now.date().isoformat()

    def one_request(times: list[list[float]] | None) -> None:
        marks = [time.perf_counter()]
        assert store.get_api_key(api_key) is not None
        marks.append(time.perf_counter())
        assert store.get_tenant(tenant) is not None
        marks.append(time.perf_counter())
        assert store.get_head(head) is not None
        marks.append(time.perf_counter())
        assert store.get_key(key) is not None
        marks.append(time.perf_counter())
        charge = Charge(f"queries:{head}", day, 1, limit=10**12)
        assert store.admit(tenant, [charge], bucket, datetime.now(UTC)) is None
        marks.append(time.perf_counter())
        store.append_audit(AuditRecord(tenant_id=tenant, action="classify", at=datetime.now(UTC), subject=head))
        marks.append(time.perf_counter())
        if times is not None:
            for i, column in enumerate(times):
                column.append(marks[i + 1] - marks[i])

    for _ in range(min(100, requests)):  # warm: connections, compiled statements, prepared statements
        one_request(None)
    per_call: list[list[float]] = [[] for _ in CALLS]
    for _ in range(requests):
        one_request(per_call)

    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            barrier.wait()
            for _ in range(requests // threads):
                one_request(None)
        except BaseException as exc:  # reported below: a failed thread fails the run
            errors.append(exc)

    pool = [threading.Thread(target=hammer) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    store.close()
    if errors:
        raise errors[0]
    return {
        "open_s": open_s,
        "per_call_s": dict(zip(CALLS, per_call, strict=True)),
        "threads": threads,
        "threaded_requests": (requests // threads) * threads,
        "threaded_wall_s": wall,
    }


def _run_system(tree: Path, url: str, requests: int, threads: int) -> dict[str, Any]:
    """`_worker` in a new process whose `provider_server` is the one in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", url, str(requests), str(threads)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"store benchmark on {tree} failed: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the run


def _summarise(raw: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.timing import summary_ms

    per_call = {name: summary_ms(samples) for name, samples in raw["per_call_s"].items()}
    requests = [sum(parts) for parts in zip(*raw["per_call_s"].values(), strict=True)]
    return {
        "open_ms": raw["open_s"] * 1e3,
        "per_call": per_call,
        "per_request": summary_ms(requests),
        "threads": raw["threads"],
        "threaded_requests_per_s": raw["threaded_requests"] / raw["threaded_wall_s"],
    }


def run(baseline_rev: str, requests: int, threads: int, postgres_url: str | None, work: Path) -> dict[str, Any]:
    from benchmarks.agent_rest import unpack_revision

    baseline_tree = work / "baseline"
    baseline_tree.mkdir()
    commit = unpack_revision(baseline_rev, baseline_tree)
    systems: dict[str, Any] = {}
    print(f"[bench] raw sqlite3 Store of {commit[:7]}", file=sys.stderr)
    systems["baseline_sqlite3"] = _run_system(baseline_tree, f"sqlite:///{work / 'baseline.db'}", requests, threads)
    print("[bench] SQLAlchemy Store on SQLite", file=sys.stderr)
    systems["sqlalchemy_sqlite"] = _run_system(ROOT, f"sqlite:///{work / 'today.db'}", requests, threads)
    cluster = None
    if postgres_url is None:
        from tests.pg_server import INSTALL_HINT, PostgresCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit(INSTALL_HINT)
        cluster = PostgresCluster(bindir).start(PG_SETTINGS)
        postgres_url = cluster.create_database()
    try:
        print("[bench] SQLAlchemy Store on PostgreSQL", file=sys.stderr)
        systems["sqlalchemy_postgresql"] = _run_system(ROOT, postgres_url, requests, threads)
    finally:
        if cluster is not None:
            cluster.stop()
    return {
        "benchmark": "store_overhead",
        "baseline_commit": commit,
        "requests": requests,
        "postgresql": "private server on loopback, " + PG_SETTINGS if cluster else "given by --postgres-url",
        "systems": {name: _summarise(raw) for name, raw in systems.items()},
    }


LABELS = {
    "baseline_sqlite3": "raw sqlite3 (baseline)",
    "sqlalchemy_sqlite": "SQLAlchemy, SQLite",
    "sqlalchemy_postgresql": "SQLAlchemy, PostgreSQL",
}


def render(result: dict[str, Any]) -> str:
    systems = result["systems"]
    head = "| Store call (p50 ms) | " + " | ".join(LABELS[s] for s in systems) + " |"
    rows = [head, "|---" * (len(systems) + 1) + "|"]
    for call in CALLS:
        rows.append(
            f"| {call} | " + " | ".join(f"{systems[s]['per_call'][call]['p50_ms']:.3f}" for s in systems) + " |"
        )
    for label, key in (("**per request, p50**", "p50_ms"), ("per request, p95", "p95_ms")):
        rows.append(f"| {label} | " + " | ".join(f"{systems[s]['per_request'][key]:.3f}" for s in systems) + " |")
    threads = next(iter(systems.values()))["threads"]
    rows.append(
        f"| requests/s, {threads} threads | "
        + " | ".join(f"{systems[s]['threaded_requests_per_s']:.0f}" for s in systems)
        + " |"
    )
    rows.append("| open (migrate) ms | " + " | ".join(f"{systems[s]['open_ms']:.0f}" for s in systems) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision of the raw-sqlite3 Store")
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per system")
    ap.add_argument("--threads", type=int, default=4, help="threads of the throughput phase")
    ap.add_argument("--quick", action="store_true", help="200 requests per system (a smoke run)")
    ap.add_argument("--postgres-url", default=None, help="an existing PostgreSQL database instead of a private one")
    ap.add_argument("--out", default=str(ROOT / ".helix" / "bench-store-overhead.json"))
    ap.add_argument("--doc", default="", help="also write the markdown table here")
    ap.add_argument("--report-only", action="store_true", help="measure nothing: re-render from --out")
    args = ap.parse_args(argv)
    requests = 200 if args.quick else args.requests

    from benchmarks.agent_rest import measure_and_report

    doc_head = "# Store cost of one classify request\n\nGenerated by `python -m benchmarks.store_overhead`.\n\n"
    measure_and_report(
        args,
        lambda work: run(args.baseline_rev, requests, args.threads, args.postgres_url, work),
        render,
        doc_head,
        "helix-store-overhead-",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
