"""python -m benchmarks.agent_rest: single-text classify through the client agent's REST API, today's
agent against an earlier revision's agent, in the same run, on the same machine.

Why a second system from another revision: a latency claim about the agent's own request path needs its
baseline measured under the same load and machine state. The baseline is the tree of a git revision
(default: the last one before the agent cached its keys and heads), unpacked with `git archive` into a
temporary folder and started from there. Each agent talks to a provider from its own tree (the protocol
moved on since: keys are now registered on a provider challenge), all four daemons on this machine, one HE
worker per provider. Both agents align once to the same head and corpus, then the requests alternate
between them (one text each, over loopback HTTPS with a kept-alive connection), so drift in the
machine's load hits both alike.

Reports p50/p95 of the client-side wall time, the agents' own latency_ms and he_latency_ms fields, and
the ratios baseline / today.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

from helix_pki import DemoPKI, ensure_demo_pki
from helix_web.launcher import Daemon, client_env, free_port, provider_env

from .timing import summary_ms

ROOT = Path(__file__).resolve().parent.parent
#: The last revision before tenants, the 4096-ring inference set and the idle-time reserve.
DEFAULT_BASELINE = "a62b9c1"
TEXTS = [
    "a gripping, beautifully acted film",
    "dull and far too long",
    "the plot makes no sense at all",
    "one of the best performances this year",
]


def _check(resp: httpx.Response, status: int = 200) -> Any:
    if resp.status_code != status:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else None


def unpack_revision(rev: str, into: Path) -> str:
    """The tree of `rev` under `into` (no git metadata); returns the full commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit


def _align(agent: httpx.Client, head: str, corpus: str, deadline_s: float = 900.0) -> str:
    job = _check(agent.post("/v1/alignments", json={"head_id": head, "corpus_id": corpus}), 202)
    end = time.monotonic() + deadline_s
    while job["state"] == "running":
        if time.monotonic() > end:
            raise TimeoutError(f"alignment {job['job_id']} still running after {deadline_s} s")
        time.sleep(0.25)  # polling interval of a job status, not a synchronisation sleep
        job = _check(agent.get(f"/v1/alignments/{job['job_id']}"))
    if job["state"] != "done":
        raise RuntimeError(f"alignment failed: {job.get('error')}")
    return str(job["map_id"])


def _daemon(name: str, module: str, env: dict[str, str], port: int, tree: Path, pki: DemoPKI, work: Path) -> Daemon:
    """A daemon of `tree` (its own code on the path), sharing the native kernel cache, not yet started."""
    env = {**env, "HELIX_NATIVE_CACHE": str(work / "native")}
    return Daemon(
        name,
        module,
        env,
        ca_cert=pki.ca.cert,
        port=port,
        log_dir=work / "logs",
        cwd=tree,
        pythonpath=tree,
        die_with_parent=True,
    )


def _set_up_provider(provider: Daemon, pki: DemoPKI, token: str) -> str | None:
    """The benchmark's head (SST-2, 400 examples) and corpus (500 passages) on a running provider, and
    the API key of a tenant for the agent (None for a revision from before tenants)."""
    ca = ssl.create_default_context(cafile=str(pki.ca.cert))
    with httpx.Client(
        base_url=provider.url, verify=ca, timeout=600, headers={"Authorization": f"Bearer {token}"}
    ) as admin:
        head = {"name": "sst2", "dataset": "sst2", "max_examples": 400, "in_distribution_texts": 32}
        _check(admin.post("/v1/admin/heads", json=head), 201)
        corpus = {"name": "wiki", "dataset": "wikipedia", "file": "passages.jsonl", "limit": 500}
        _check(admin.post("/v1/admin/corpora", json=corpus), 201)
        # A benchmark measures latency, not the default rate limit (20 requests/s per tenant).
        quotas = {"rate_per_second": 10_000, "rate_burst": 10_000}
        tenant = admin.post("/v1/admin/tenants", json={"name": "bench", "quotas": quotas})
        if tenant.status_code in (404, 405):
            return None
        tenant_id = _check(tenant, 201)["tenant_id"]
        return str(_check(admin.post(f"/v1/admin/tenants/{tenant_id}/api-keys"), 201)["api_key"])


def _accuracy(clients: dict[str, httpx.Client], datasets: Path, count: int = 200) -> dict[str, Any]:
    """Each agent's labels for the same SST-2 validation texts: accuracy against the gold labels and how
    often the two agents agree (the honest client's results must not change with the provider's
    protection)."""
    from helix_datasets import load_split

    split = load_split(datasets, "sst2", "validation", limit=count, seed=0)
    labels: dict[str, list[str]] = {}
    for name, client in clients.items():
        body = _check(client.post("/v1/classify", json={"head_id": "sst2", "texts": list(split.texts)}))
        labels[name] = [r["label"] for r in body["results"]]
    names = split.class_names
    gold = [names[int(y)] for y in split.labels]
    out: dict[str, Any] = {"texts": len(gold)}
    for name, got in labels.items():
        out[f"{name}_accuracy"] = sum(g == y for g, y in zip(got, gold, strict=True)) / len(gold)
    out["agreement"] = sum(a == b for a, b in zip(labels["baseline"], labels["today"], strict=True)) / len(gold)
    return out


def run(baseline_rev: str, requests: int, work: Path) -> dict[str, Any]:
    pki = ensure_demo_pki(work / "pki")
    ca = ssl.create_default_context(cafile=str(pki.ca.cert))
    token = secrets.token_urlsafe(16)
    datasets = Path(os.environ.get("HELIX_DATASETS", ROOT.parent / "shared" / "datasets"))
    baseline_dir = work / "baseline-tree"
    baseline_dir.mkdir()
    commit = unpack_revision(baseline_rev, baseline_dir)
    trees = {"baseline": baseline_dir, "today": ROOT}
    daemons: list[Daemon] = []
    agents: dict[str, Daemon] = {}
    try:
        for name, tree in trees.items():
            p_port, c_port = free_port(), free_port()
            penv = provider_env(
                pki=pki,
                port=p_port,
                data_dir=work / f"provider-{name}",
                datasets_dir=datasets,
                admin_token=token,
                workers="1",
                env_file=str(work / "none.env"),
            )
            provider = _daemon(f"provider-{name}", "provider_server.cli", penv, p_port, tree, pki, work)
            daemons.append(provider)  # registered before it starts: stopped whatever fails later
            api_key = _set_up_provider(provider.start(180.0), pki, token)
            extra = {"provider_api_key": api_key} if api_key else {}
            cenv = client_env(
                pki=pki,
                port=c_port,
                data_dir=work / f"agent-{name}",
                provider_url=provider.url,
                embedder="wordllama",
                client_name=f"bench-{name}",
                env_file=str(work / "none.env"),
                **extra,
            )
            agents[name] = _daemon(f"agent-{name}", "client_agent.cli", cenv, c_port, tree, pki, work)
            daemons.append(agents[name])
            agents[name].start(180.0)
        clients = {name: httpx.Client(base_url=a.url, verify=ca, timeout=120) for name, a in agents.items()}
        try:
            for client in clients.values():
                _align(client, "sst2", "wiki")
            accuracy = _accuracy(clients, datasets)
            wall: dict[str, list[float]] = {name: [] for name in clients}
            served: dict[str, list[float]] = {name: [] for name in clients}
            he: dict[str, list[float]] = {name: [] for name in clients}
            for i in range(requests + 4):
                for name in ("baseline", "today") if i % 2 == 0 else ("today", "baseline"):
                    t0 = time.perf_counter()
                    body = _check(
                        clients[name].post("/v1/classify", json={"head_id": "sst2", "texts": [TEXTS[i % len(TEXTS)]]})
                    )
                    if i >= 4:  # the first requests warm caches and connections on both sides
                        wall[name].append(time.perf_counter() - t0)
                        served[name].append(body["latency_ms"] / 1e3)
                        he[name].append(body["he_latency_ms"] / 1e3)
        finally:
            for client in clients.values():
                client.close()
    finally:
        for daemon in daemons:
            daemon.stop()
    out: dict[str, Any] = {
        "baseline_commit": commit,
        "requests_per_agent": requests,
        "agents": {},
        "accuracy": accuracy,
    }
    for name in wall:
        out["agents"][name] = {
            "rest_wall": summary_ms(wall[name]),
            "agent_latency": summary_ms(served[name]),
            "agent_he_latency": summary_ms(he[name]),
        }
    base, today = out["agents"]["baseline"], out["agents"]["today"]
    out["ratio_p50_wall"] = base["rest_wall"]["p50_ms"] / today["rest_wall"]["p50_ms"]
    out["ratio_p95_wall"] = base["rest_wall"]["p95_ms"] / today["rest_wall"]["p95_ms"]
    return out


DOC_HEAD = """# Client agent REST latency and accuracy: today against an earlier revision

Generated by `python -m benchmarks.agent_rest --baseline-rev REV` (raw numbers in
`benchmarks/results/agent_rest.json`). Two systems on the same machine at the same time: a provider and a client
agent from this tree, and a provider and a client agent unpacked from the baseline revision (one HE worker per
provider). Each agent aligned to its provider's SST-2 head (400 training examples) on the same 500 Wikipedia
passages with the WordLlama embedder (today's agent as a tenant with an API key, as every client now is); then
single-text `POST /v1/classify` requests alternate between the two agents over loopback HTTPS with kept-alive
connections. "REST" is the wall time the caller sees; "agent latency" and "agent HE" are the agent's own
`latency_ms` and `he_latency_ms` fields. Accuracy: both agents label the same 200 SST-2 validation texts.

"""


def render(result: dict[str, Any]) -> str:
    rows = ["| agent | REST p50 ms | REST p95 ms | agent latency p50 ms | agent HE p50 ms |", "|---|---|---|---|---|"]
    for name, label in (("baseline", f"baseline {result['baseline_commit'][:8]}"), ("today", "today")):
        a = result["agents"][name]
        rows.append(
            f"| {label} | {a['rest_wall']['p50_ms']:.1f} | {a['rest_wall']['p95_ms']:.1f} | "
            f"{a['agent_latency']['p50_ms']:.1f} | {a['agent_he_latency']['p50_ms']:.1f} |"
        )
    rows.append(
        f"\nbaseline / today: p50 x{result['ratio_p50_wall']:.2f}, p95 x{result['ratio_p95_wall']:.2f} "
        f"({result['requests_per_agent']} single-text requests per agent, alternating)"
    )
    acc = result.get("accuracy")
    if acc:
        rows.append(
            f"\nAccuracy on {acc['texts']} SST-2 validation texts: baseline {acc['baseline_accuracy']:.3f}, "
            f"today {acc['today_accuracy']:.3f}; the two agents' labels agree on {acc['agreement']:.1%} of them."
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_rest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision of the baseline agent")
    ap.add_argument("--requests", type=int, default=200, help="measured single-text requests per agent")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "agent_rest.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks-agent-rest.md"), help="markdown ('' to skip)")
    ap.add_argument("--report-only", action="store_true", help="measure nothing: re-render --doc from --out")
    args = ap.parse_args(argv)
    measure_and_report(
        args, lambda work: run(args.baseline_rev, args.requests, work), render, DOC_HEAD, "helix-agent-bench-"
    )
    return 0


def measure_and_report(
    args: argparse.Namespace,
    measure: Callable[[Path], dict[str, Any]],
    render_result: Callable[[dict[str, Any]], str],
    doc_head: str,
    prefix: str,
) -> None:
    """What the two-revision benchmarks share: measure in a temporary work folder (or, with
    --report-only, read --out), write the JSON to --out, print the table and write it to --doc."""
    out = Path(args.out)
    if args.report_only:
        result = json.loads(out.read_text(encoding="utf-8"))
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            result = measure(Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"[bench] wrote {out}", file=sys.stderr)
    print(render_result(result))
    if args.doc:
        Path(args.doc).write_text(doc_head + render_result(result) + "\n", encoding="utf-8")
        print(f"[bench] wrote {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
