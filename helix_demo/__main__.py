"""`python -m helix_demo` (or `helix-demo`): the whole two-silo story on one machine.

Provider (Party A): all-MiniLM-L6-v2 encoder, logistic-regression heads trained on SST-2 and
AG News, a public corpus of Wikipedia passages. Client (Party B): WordLlama l2_supercat, a static
embedding built from Llama-2's token codebook: a different family (no attention, different tokenizer
and training) chosen so the map has real work to do, and fast enough that the demo fits in minutes
on two cores. Both run as separate processes on loopback HTTPS with a locally created CA.

The demo aligns the client to each head, classifies each head's full test split through the
encrypted path, and reports accuracy, agreement with the plaintext computation, latency and bytes.
Plaintext references (provider-native accuracy, plaintext-mapped logits) are measurements for the
report only: they use admin endpoints and the map file, bypassing the protocol on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from helix_datasets import load_split
from helix_pki import ensure_demo_pki
from helix_web.launcher import Daemon, client_env, free_port, provider_env

HEADS = (("sst2", "sst2"), ("ag_news", "ag_news"))


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text}")
    return resp.json()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="helix-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--datasets-dir", type=Path, default=Path(os.environ.get("HELIX_DATASETS", "../shared/datasets")))
    p.add_argument("--work-dir", type=Path, default=Path(".helix/demo"))
    p.add_argument("--corpus-size", type=int, default=4000)
    p.add_argument(
        "--train-limit", type=int, default=2500, help="training examples per head (a seeded sample; SST-2 has 20k)"
    )
    p.add_argument("--test-limit", type=int, default=None, help="cap test examples per head (default: the full split)")
    p.add_argument("--latency-samples", type=int, default=100, help="single-text calls per head for p50/p95")
    p.add_argument("--client-embedder", default="wordllama")
    p.add_argument("--ridge-lambda", type=float, default=None)
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    p.add_argument("--report", type=Path, default=Path("demo-report.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import logging
    import signal

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through `finally`, which stops both services

    signal.signal(signal.SIGTERM, _stop)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the report
    t_start = time.perf_counter()
    datasets = args.datasets_dir.resolve()
    if not (datasets / "sst2" / "test.jsonl").exists():
        raise SystemExit(f"datasets not found under {datasets}; pass --datasets-dir or set HELIX_DATASETS")
    work = args.work_dir.resolve()
    pki = ensure_demo_pki(work / "pki")
    admin_token = secrets.token_urlsafe(24)
    p_port, c_port = free_port(), free_port()
    print(f"[demo] datasets: {datasets}\n[demo] work dir: {work}")
    provider = Daemon(
        "provider",
        "provider_server.cli",
        provider_env(
            pki=pki,
            port=p_port,
            data_dir=work / "provider",
            datasets_dir=datasets,
            admin_token=admin_token,
            workers=str(args.workers),
        ),
        ca_cert=pki.ca.cert,
        port=p_port,
        log_dir=work / "logs",
        die_with_parent=True,
        inherit_settings=True,
    )
    agent_env = client_env(
        pki=pki,
        port=c_port,
        data_dir=work / "client",
        provider_url=provider.url,
        embedder=args.client_embedder,
        client_name="demo-client",
        datasets_dir=str(datasets),
    )
    if args.ridge_lambda is not None:
        agent_env["HELIX_CLIENT_RIDGE_LAMBDA"] = str(args.ridge_lambda)
        agent_env["HELIX_CLIENT_ALIGNMENT_METHOD"] = "ridge"  # an explicit lambda means the paper's plain ridge
    client: Daemon | None = None
    try:
        print("[demo] starting provider (loads MiniLM, spawns HE workers) ...")
        provider.start(deadline_s=180.0)
        admin = httpx.Client(
            base_url=provider.url,
            verify=ssl.create_default_context(cafile=str(pki.ca.cert)),
            timeout=1800,
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        agent_env["HELIX_CLIENT_PROVIDER_API_KEY"] = create_tenant_key(admin, "demo-client")
        client = Daemon(
            "client",
            "client_agent.cli",
            agent_env,
            ca_cert=pki.ca.cert,
            port=c_port,
            log_dir=work / "logs",
            die_with_parent=True,
            inherit_settings=True,
        ).spawn()
        print("[demo] client agent started alongside the provider's setup")
        report = run(args, datasets, admin, client, provider)
    finally:
        if client is not None:
            client.stop()
        provider.stop()
    report["total_seconds"] = time.perf_counter() - t_start
    args.report.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"[demo] wrote {args.report} ({report['total_seconds']:.0f} s in all)")
    return report


def create_tenant_key(admin: httpx.Client, name: str) -> str:
    """The client agent's tenant at the provider and its API key, created through the admin API (a
    tenant of that name from an earlier run in the same work dir gets a new key)."""
    tenants = {t["name"]: t["tenant_id"] for t in _check(admin.get("/v1/admin/tenants"))}
    tenant_id = tenants.get(name) or _check(admin.post("/v1/admin/tenants", json={"name": name}))["tenant_id"]
    api_key: str = _check(admin.post(f"/v1/admin/tenants/{tenant_id}/api-keys"))["api_key"]
    return api_key


def _provider_setup(args: argparse.Namespace, admin: httpx.Client) -> None:
    existing_heads = {h["head"]["id"] for h in _check(admin.get("/v1/admin/heads"))}
    for head_id, dataset in HEADS:
        if head_id in existing_heads:
            print(f"[provider] head {head_id} exists (reused)")
            continue
        t = time.perf_counter()
        r = _check(
            admin.post(
                "/v1/admin/heads",
                json={
                    "name": head_id,
                    "dataset": dataset,
                    "split": "train",
                    "max_examples": args.train_limit,
                    "in_distribution_texts": 64,
                },
            )
        )
        print(
            f"[provider] trained head {head_id}: {r['train_examples']} examples, train acc {r['train_accuracy']:.3f} "
            f"({time.perf_counter() - t:.1f} s)"
        )
    corpus_id = f"wiki{args.corpus_size}"
    t = time.perf_counter()
    resp = admin.post(
        "/v1/admin/corpora",
        json={"name": corpus_id, "dataset": "wikipedia", "file": "passages.jsonl", "limit": args.corpus_size},
    )
    if resp.status_code == 409:  # named the same in an earlier run in this work dir
        print(f"[provider] public corpus {corpus_id} exists (reused)")
        return
    _check(resp)
    print(
        f"[provider] public corpus {corpus_id}: {args.corpus_size} passages embedded ({time.perf_counter() - t:.1f} s)"
    )


def run(
    args: argparse.Namespace, datasets: Path, admin: httpx.Client, client: Daemon, provider: Daemon
) -> dict[str, Any]:
    _provider_setup(args, admin)  # the client agent starts meanwhile (it was launched before)
    corpus_id = f"wiki{args.corpus_size}"
    client.wait_ready(180.0)
    agent = httpx.Client(
        base_url=client.url, verify=ssl.create_default_context(cafile=str(client.ca_cert)), timeout=1800
    )
    from client_agent.maps import MapStore
    from helix_embeddings import CachedEmbedder, load_embedder

    embedder = CachedEmbedder(load_embedder(args.client_embedder), args.work_dir.resolve() / "reference-cache")
    report: dict[str, Any] = {
        "provider_encoder": "sentence-transformers:all-MiniLM-L6-v2",
        "client_embedder": embedder.model_id,
        "corpus": corpus_id,
        "heads": {},
    }
    for head_id, dataset in HEADS:
        print(
            f"[client] secure alignment against head {head_id} on public + k in-distribution data "
            f"({args.corpus_size} public passages plus the head's published in-distribution texts) ..."
        )
        time.perf_counter()
        job = _check(
            agent.post("/v1/alignments", json={"head_id": head_id, "corpus_id": corpus_id, "include_head_texts": True})
        )
        last = ""
        while job["state"] == "running":
            time.sleep(0.5)
            job = _check(agent.get(f"/v1/alignments/{job['job_id']}"))
            p = job["progress"]
            line = (
                f"  {p['phase']}: uploaded {p['uploaded_ciphertexts']}/{p['total_ciphertexts']} ct, "
                f"computed {p['computed_columns']}/{p['total_columns']} columns"
            )
            if line != last:
                print(line)
                last = line
        if job["state"] != "done":
            raise RuntimeError(f"alignment failed: {job['error']}")
        meta = _check(agent.get(f"/v1/maps/{job['map_id']}"))
        k_in = meta["num_samples"] - args.corpus_size
        print(
            f"  map {meta['map_id']}: {meta['num_samples']} pairs (public {args.corpus_size} + k = {k_in} "
            f"in-distribution), {meta['alignment_seconds']:.1f} s, "
            f"{meta['bytes_sent'] / 1e6:.1f} MB up, {meta['bytes_received'] / 1e6:.1f} MB down"
        )
        report["heads"][head_id] = evaluate_head(
            args,
            datasets,
            dataset,
            head_id,
            meta,
            agent,
            admin,
            embedder,
            MapStore(args.work_dir.resolve() / "client" / "maps"),
        )
    return report


def evaluate_head(
    args: argparse.Namespace,
    datasets: Path,
    dataset: str,
    head_id: str,
    meta: dict[str, Any],
    agent: httpx.Client,
    admin: httpx.Client,
    embedder: Any,
    maps: Any,
) -> dict[str, Any]:
    test = load_split(datasets, dataset, "test", args.test_limit)
    labels = np.array(test.labels)
    n = len(test.texts)
    print(f"[client] classifying {n} {dataset} test texts through the encrypted path ...")
    # The provider's own plaintext evaluation (a reference figure) runs alongside, on spare cycles.
    background = ThreadPoolExecutor(max_workers=1)
    native_future = background.submit(
        lambda: _check(
            admin.post(
                f"/v1/admin/heads/{head_id}/evaluate",
                json={"dataset": dataset, "split": "test", "limit": args.test_limit},
            )
        )
    )
    t = time.perf_counter()
    batches = [test.texts[i : i + 256] for i in range(0, n, 256)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # overlap client encryption with provider evaluation
        replies = list(
            pool.map(
                lambda b: _check(
                    agent.post("/v1/classify", json={"texts": b, "head_id": head_id, "map_id": meta["map_id"]})
                ),
                batches,
            )
        )
    bulk_s = time.perf_counter() - t
    enc_logits = np.array([r["logits"] for rep in replies for r in rep["results"]])
    bytes_total = sum(rep["bytes_sent"] + rep["bytes_received"] for rep in replies)
    bytes_up = sum(rep["bytes_sent"] for rep in replies)
    enc_pred = enc_logits.argmax(1)
    print(f"  {n / bulk_s:.0f} texts/s in batches of 256 ({bulk_s:.1f} s)")
    t = time.perf_counter()
    native = native_future.result()  # finish before timing single queries: latency is measured on a quiet machine
    background.shutdown()
    print(f"  provider-native evaluation done ({time.perf_counter() - t:.1f} s after the encrypted pass)")
    lat, he_lat = [], []
    for text in test.texts[: args.latency_samples]:
        t0 = time.perf_counter()
        rep = _check(agent.post("/v1/classify", json={"texts": [text], "head_id": head_id, "map_id": meta["map_id"]}))
        lat.append((time.perf_counter() - t0) * 1e3)
        he_lat.append(rep["he_latency_ms"])
    print(f"  {len(lat)} single-text calls: p50 {_pct(lat, 50):.1f} ms")
    t = time.perf_counter()
    stored = maps.get(meta["map_id"])
    mapped = stored.affine.apply(embedder.embed(test.texts).astype(np.float64))
    ref = []
    for i in range(0, n, 2000):
        ref.extend(
            _check(
                admin.post(
                    f"/v1/admin/heads/{head_id}/reference-logits", json={"embeddings": mapped[i : i + 2000].tolist()}
                )
            )["logits"]
        )
    plain_logits = np.array(ref)
    print(f"  plaintext references computed ({time.perf_counter() - t:.1f} s)")
    plain_pred = plain_logits.argmax(1)
    out = {
        "test_examples": n,
        "provider_native_accuracy": native["accuracy"],
        "helix_encrypted_accuracy": float(np.mean(enc_pred == labels)),
        "plaintext_mapped_accuracy": float(np.mean(plain_pred == labels)),
        "encrypted_vs_plaintext_agreement": float(np.mean(enc_pred == plain_pred)),
        "max_abs_logit_error": float(np.max(np.abs(enc_logits - plain_logits))),
        "latency_ms_p50": _pct(lat, 50),
        "latency_ms_p95": _pct(lat, 95),
        "he_latency_ms_p50": _pct(he_lat, 50),
        "he_latency_ms_p95": _pct(he_lat, 95),
        "latency_samples": len(lat),
        "bytes_per_query": bytes_total / n,
        "upload_bytes_per_query": bytes_up / n,
        "bulk_texts_per_second": n / bulk_s,
        "alignment_seconds": meta["alignment_seconds"],
        "alignment_bytes_sent": meta["bytes_sent"],
        "alignment_bytes_received": meta["bytes_received"],
        "alignment_samples": meta["num_samples"],
        "alignment_data": "public + k in-distribution (the head's published texts)",
        "map_id": meta["map_id"],
        "ridge_lambda": meta["ridge_lambda"],
    }
    print(
        f"  encrypted acc {out['helix_encrypted_accuracy']:.4f}, "
        f"plaintext-mapped {out['plaintext_mapped_accuracy']:.4f}, "
        f"agreement {out['encrypted_vs_plaintext_agreement']:.4f}, max |logit err| {out['max_abs_logit_error']:.2e}"
    )
    return out


def print_table(report: dict[str, Any]) -> None:
    heads = report["heads"]
    rows = [
        ("provider-native accuracy", "provider_native_accuracy", "{:.4f}"),
        ("HELIX encrypted accuracy", "helix_encrypted_accuracy", "{:.4f}"),
        ("plaintext-mapped accuracy", "plaintext_mapped_accuracy", "{:.4f}"),
        ("encrypted vs plaintext agreement", "encrypted_vs_plaintext_agreement", "{:.4f}"),
        ("max |logit error|", "max_abs_logit_error", "{:.1e}"),
        ("per-query latency p50 (ms)", "latency_ms_p50", "{:.1f}"),
        ("per-query latency p95 (ms)", "latency_ms_p95", "{:.1f}"),
        ("bytes per query (up+down, KB)", "bytes_per_query", "{:.0f}"),
        ("alignment pairs (public + k)", "alignment_samples", "{:d}"),
        ("alignment time (s)", "alignment_seconds", "{:.1f}"),
        ("alignment bytes up / down (MB)", None, None),
        ("test examples", "test_examples", "{:d}"),
    ]
    names = list(heads)
    width = 34
    print()
    print(
        f"HELIX demo: provider {report['provider_encoder']} <- client {report['client_embedder']}, "
        f"alignment data: public corpus {report['corpus']} + k in-distribution texts of each head"
    )
    print("-" * (width + 16 * len(names)))
    print(f"{'':<{width}}" + "".join(f"{n:>16}" for n in names))
    for label, key, fmt in rows:
        cells = []
        for n in names:
            h = heads[n]
            if key is None or fmt is None:  # the bytes row has neither: it shows two values
                cells.append(f"{h['alignment_bytes_sent'] / 1e6:.1f} / {h['alignment_bytes_received'] / 1e6:.1f}")
            elif key == "bytes_per_query":
                cells.append(fmt.format(h[key] / 1e3))
            else:
                cells.append(fmt.format(h[key]))
        print(f"{label:<{width}}" + "".join(f"{c:>16}" for c in cells))
    print("-" * (width + 16 * len(names)))


if __name__ == "__main__":
    main()
