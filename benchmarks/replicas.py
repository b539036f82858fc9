"""python -m benchmarks.replicas: classify throughput through HAProxy with 1, 2 and 3 provider replicas.

Each configuration is the same provider (one database, one data directory; `provider_server.balancer`'s
HAProxy in front) with that many replicas running, each with the default worker settings for this
machine. Callers in this process register one inference key, encrypt a fixed set of queries once, then
send them as fast as the balancer answers from `concurrency` threads for a fixed time; throughput is the
answered requests (and queries) per second, latency the callers' wall time per request.

What to expect: replicas add processes, not cores. On a machine with few cores every replica competes for
the same CPUs as the others (and as the callers and HAProxy), so more replicas buy availability (a lost
replica costs only retried requests), not throughput; on more cores, or more machines, they add both.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from client_agent.provider_client import ProviderClient
from helix_he.keys import ClientKeys
from helix_he.linear_head import encrypt_queries
from helix_he.packing import LinearHeadLayout
from helix_pki import ensure_demo_pki
from provider_server.balancer import HealthCheck
from shared_protocol.messages import ClassifyHeader, KeyPurpose, KeyRegistrationHeader
from tests.replicas_support import Balancer, ReplicaSet, https_client

from .agent_rest import _check, measure_and_report
from .timing import summary_ms

ROOT = Path(__file__).resolve().parent.parent


def _set_up(url: str, ca: Path, token: str) -> str:
    """A small head (SST-2, 200 examples) and a tenant without a rate limit; returns its API key."""
    with https_client(url, ca, headers={"Authorization": f"Bearer {token}"}) as admin:
        head = {"name": "sst2", "dataset": "sst2", "max_examples": 200, "in_distribution_texts": 0}
        _check(admin.post("/v1/admin/heads", json=head), 201)
        quotas = {"rate_per_second": 1_000_000, "rate_burst": 1_000_000, "queries_per_day": 1_000_000_000}
        tenant_id = _check(admin.post("/v1/admin/tenants", json={"name": "bench", "quotas": quotas}), 201)["tenant_id"]
        return str(_check(admin.post(f"/v1/admin/tenants/{tenant_id}/api-keys"), 201)["api_key"])


def _queries(pc: ProviderClient, count: int) -> tuple[ClassifyHeader, list[bytes]]:
    """Register an inference key and encrypt `count` random queries under it, once."""
    info, head = pc.info(), pc.head("sst2")
    pset = info.default_parameter_set if info.default_parameter_set in head.parameter_sets else head.parameter_sets[0]
    keys = ClientKeys.generate(pset)
    challenge = pc.key_challenge()
    seed = bytes.fromhex(challenge.seed)
    key = pc.register_key(
        KeyRegistrationHeader(
            client_name="bench",
            purpose=KeyPurpose.inference,
            parameter_set=pset,
            galois_elements=[],
            challenge_id=challenge.challenge_id,
        ),
        keys.public_key_bytes(seed),
    )
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    x = np.random.default_rng(0).normal(0.0, 0.05, size=(count, head.dim))
    header = ClassifyHeader(
        head_id="sst2", key_id=key.key_id, num_queries=count, query_scale_bits=keys.he.params.query_scale_bits
    )
    return header, encrypt_queries(keys, x, layout)


def _load(
    url: str, ca: Path, api_key: str, header: ClassifyHeader, blobs: list[bytes], concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` callers send the same request without pause for `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    stop_at: list[float] = []

    def caller() -> None:
        with ProviderClient(url, ca, api_key=api_key) as pc:
            start.wait()
            while time.monotonic() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    pc.classify(header, blobs, max_blob_bytes=1 << 22)
                except Exception as exc:  # counted and reported: a failed request is part of the result
                    with lock:
                        errors.append(str(exc)[:200])
                    continue
                with lock:
                    latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    for t in threads:
        t.start()
    stop_at.append(time.monotonic() + seconds)
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    summary = summary_ms(latencies) if latencies else {}
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "queries_per_s": len(latencies) * header.num_queries / elapsed,
        "p50_ms": summary.get("p50_ms"),
        "p95_ms": summary.get("p95_ms"),
    }


def run(work: Path, *, counts: list[int], seconds: float, concurrency: int, queries: int) -> dict[str, Any]:
    pki = ensure_demo_pki(work / "pki")
    token = secrets.token_urlsafe(16)
    datasets = Path(os.environ.get("HELIX_DATASETS", ROOT.parent / "shared" / "datasets"))
    replicas = ReplicaSet(
        pki=pki,
        datasets=datasets,
        base=work,
        database_url=f"sqlite:///{work / 'shared-data' / 'provider.db'}",
        count=max(counts),
        admin_token=token,
    ).make()
    result: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "concurrency": concurrency,
        "queries_per_request": queries,
        "seconds_per_configuration": seconds,
        "replicas": {},
    }
    api_key: str | None = None
    request: tuple[ClassifyHeader, list[bytes]] | None = None
    try:
        for count in counts:
            names = replicas.names()[:count]
            replicas.start([n for n in names if not replicas.by_name(n).running])
            balancer = Balancer(pki, replicas.backends(names), work / f"balancer-{count}", health=HealthCheck()).start()
            try:
                balancer.wait_servers_up(set(names))
                if api_key is None:
                    api_key = _set_up(balancer.url, pki.ca.cert, token)
                if request is None:
                    with ProviderClient(balancer.url, pki.ca.cert, api_key=api_key) as pc:
                        request = _queries(pc, queries)
                header, blobs = request
                _load(balancer.url, pki.ca.cert, api_key, header, blobs, concurrency, min(3.0, seconds))  # warm up
                measured = _load(balancer.url, pki.ca.cert, api_key, header, blobs, concurrency, seconds)
                served = [r.server for r in balancer.requests() if r.path == "/v1/classify" and r.status == 200]
                measured["served_by"] = {n: served.count(n) for n in names}
            finally:
                balancer.stop()
            result["replicas"][str(count)] = measured
            print(f"[bench] {count} replica(s): {measured}", file=sys.stderr)
    finally:
        replicas.stop()
    one = result["replicas"][str(counts[0])]["queries_per_s"]
    for entry in result["replicas"].values():
        entry["speedup"] = entry["queries_per_s"] / one if one else None
    return result


def render(result: dict[str, Any]) -> str:
    rows = [
        "| replicas | requests/s | queries/s | p50 ms | p95 ms | vs 1 replica | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, r in result["replicas"].items():
        rows.append(
            f"| {count} | {r['requests_per_s']:.1f} | {r['queries_per_s']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | x{r['speedup']:.2f} | {r['errors']} |"
        )
    rows.append(
        f"\n{result['concurrency']} callers, {result['queries_per_request']} queries per request, "
        f"{result['seconds_per_configuration']:.0f} s per configuration, {result['cpu_count']} CPUs."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.replicas", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3], help="replica counts, in order")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per configuration")
    ap.add_argument("--concurrency", type=int, default=6, help="callers sending requests at once")
    ap.add_argument("--queries", type=int, default=8, help="queries per request")
    ap.add_argument("--quick", action="store_true", help="4 s per configuration (a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "replicas.json"))
    ap.add_argument("--doc", default="", help="markdown file to write the table to ('' to skip)")
    ap.add_argument("--report-only", action="store_true", help="measure nothing: re-render from --out")
    args = ap.parse_args(argv)
    seconds = 4.0 if args.quick else args.seconds
    counts = sorted(set(args.replicas))

    def measure(work: Path) -> dict[str, Any]:
        return run(work, counts=counts, seconds=seconds, concurrency=args.concurrency, queries=args.queries)

    measure_and_report(args, measure, render, "# Classify throughput by replica count\n\n", "helix-replicas-")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
