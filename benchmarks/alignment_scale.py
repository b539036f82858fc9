"""python -m benchmarks.alignment_scale: a big alignment's shard work, on this machine and on a local Ray
cluster, phase by phase, with the per-shard costs a cluster projection is built from.

What runs: the client's and the provider's real shard code (`client_agent.shards`,
`provider_server.services.alignment_shards`, `helix_shards`), in this process and its workers, without
daemons or HTTPS in between, so each phase is timed alone:

- embed: MiniLM (d = 384) embeddings of n public texts (the Wikipedia corpus in the datasets folder,
  repeated when it has fewer). They are cached on disk with the time they took, so a later run measures
  the HE phases only; above --embed-up-to texts the embedding is not run but scaled linearly from the
  measured size (its embeddings repeated as X: the HE phases' cost does not depend on the values);
- encrypt: X in chunks of --chunk ciphertexts, under the ring the client would choose for d = 384;
- upload: the ciphertext bytes, and the provider's check of every chunk (`validate_alignment_ciphertexts`);
  their transfer time is left to the projection (bandwidth is an assumption, not a measurement here);
- provider: Enc(X^T Y) with today's local path (the provider's process pool, one piece of result groups
  per worker) and with shards of --shard-ciphertexts ciphertexts on Ray, added in a tree (Y: the same
  MiniLM embeddings, d_A = 384); both results are decrypted and compared;
- per shard: one embedding shard, one chunk's encryption, one shard's partial and one addition of two
  partials, each timed in this process on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from client_agent.shards import AlignmentShards
from helix_he.budget import y_scale_bits_for
from helix_he.context import he_context
from helix_he.cross_covariance import PackedResultShape, decrypt_cross_covariance, validate_alignment_ciphertexts
from helix_he.keys import ClientKeys
from helix_he.packing import CrossCovarianceLayout, next_pow2, stride_bits_for
from helix_he.params import PARAMETER_SETS
from helix_shards import LocalExecutor, ShardExecutor
from provider_server.services.alignment_compute import fold_major, piece_bounds
from provider_server.services.alignment_shards import (
    SessionKeys,
    add_partials,
    load_worker_state,
    session_shards,
    shard_partial,
    sharded_cross_covariance,
)
from provider_server.workers.jobs import CrossCovarianceJob
from provider_server.workers.pool import HePool

from .agent_rest import measure_and_report
from .timing import timed

ROOT = Path(__file__).resolve().parent.parent
EMBEDDER = "minilm"
DOC_HEAD = "# Big alignments: local and Ray\n\n"


def _texts(datasets: Path, n: int) -> list[str]:
    with (datasets / "wikipedia" / "passages.jsonl").open(encoding="utf-8") as fh:
        corpus = [json.loads(line)["text"] for line in fh if line.strip()]
    return [corpus[i % len(corpus)] for i in range(n)]


def _alignment_set(dim: int) -> str:
    """The ring a client chooses for this dimension (`client_agent.alignment.alignment_parameter_set`)."""
    fits = [p for p in PARAMETER_SETS.values() if p.supports_alignment and p.poly_modulus_degree >= 2 * next_pow2(dim)]
    return min(fits, key=lambda p: p.poly_modulus_degree).name


def _embeddings(
    texts: list[str], cache: Path, executors: dict[str, ShardExecutor], shard_texts: int, up_to: int
) -> dict[str, Any]:
    """X (n, 384) and the embedding times: measured (and cached) up to `up_to` texts, else projected."""
    n = len(texts)
    path = cache / f"{EMBEDDER}-{n}.npz"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        return {"x": np.load(path)["x"], **json.loads(meta_path.read_text())}
    from helix_embeddings import load_embedder

    embedder = load_embedder(EMBEDDER)
    if n > up_to:
        smaller = _embeddings(texts[:up_to], cache, executors, shard_texts, up_to)
        x = np.vstack([smaller["x"]] * -(-n // up_to))[:n]  # the HE phases' cost does not depend on the values
        meta: dict[str, Any] = {
            "measured": False,
            "shard_seconds": smaller["shard_seconds"],
            "seconds": {k: v * n / up_to for k, v in smaller["seconds"].items()},
        }
    else:
        seconds = {}
        x = np.zeros(0)
        for name, ex in executors.items():
            shards = AlignmentShards(ex, EMBEDDER, shard_texts if ex.distributed else 0)
            x, seconds[name] = timed(lambda: shards.embed(embedder, texts))
            print(f"[bench] embed n={n} {name}: {seconds[name]:.1f} s", file=sys.stderr)
        _, one = timed(lambda: embedder.embed(texts[:shard_texts]))
        meta = {"measured": True, "shard_seconds": one, "seconds": seconds}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x)
    meta_path.write_text(json.dumps(meta))
    return {"x": x, **meta}


def _pool_cross_covariance(job: CrossCovarianceJob, workers: int, groups: int) -> tuple[list[bytes], float]:
    """Today's local path: the provider's process pool, one piece of result groups per worker."""
    pool = HePool(workers)
    try:
        pool.warm_up([job.parameter_set])

        async def run() -> list[tuple[list[bytes], float]]:
            pieces = [replace(job, group_start=lo, group_stop=hi) for lo, hi in piece_bounds(groups, workers)]
            return await asyncio.gather(*(pool.run(p) for p in pieces))

        results = asyncio.run(run())
    finally:
        pool.close()
    return fold_major([part for part, _ in results], 1), results[0][1]


def _size(n: int, args: argparse.Namespace, work: Path, executors: dict[str, ShardExecutor]) -> dict[str, Any]:
    datasets = Path(os.environ.get("HELIX_DATASETS", ROOT.parent / "shared" / "datasets"))
    texts = _texts(datasets, n)
    emb = _embeddings(texts, Path(args.cache_dir), executors, args.embed_shard_texts, args.embed_up_to)
    x = emb["x"].astype(np.float64)
    y = x.copy()  # the provider's MiniLM embeddings of the same texts
    dim = x.shape[1]
    pset = _alignment_set(dim)
    he = he_context(pset)
    keys = ClientKeys.generate(pset)
    layout = CrossCovarianceLayout.for_key(he.n, dim, n, stride_bits_for(he.n, dim))
    x_unit = x / float(np.max(np.abs(x)))
    chunks = -(-layout.num_ciphertexts // args.chunk)
    out: dict[str, Any] = {
        "texts": n,
        "feature_dim": dim,
        "parameter_set": pset,
        "ciphertexts": layout.num_ciphertexts,
        "chunks": chunks,
        "embedding_measured": emb["measured"],
        "phases_s": {name: {"embed": emb["seconds"][name]} for name in executors},
    }
    blobs: list[bytes] = []
    for name, ex in executors.items():
        shards = AlignmentShards(ex)
        enc, seconds = timed(
            lambda: [b for _, _, part in shards.encrypt(keys, x_unit, layout, args.chunk) for b in part]
        )
        out["phases_s"][name]["encrypt"] = seconds
        blobs = enc
        print(f"[bench] encrypt n={n} {name}: {seconds:.1f} s", file=sys.stderr)
    _, check = timed(
        lambda: validate_alignment_ciphertexts(
            he, blobs, max_ciphertext_bytes=1 << 22, scale_bits=layout.data_scale_bits
        )
    )
    out["upload_bytes"] = sum(len(b) for b in blobs)
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, blob in enumerate(blobs):
        paths.append(str(folder / f"{i:06d}.ct"))
        Path(paths[-1]).write_bytes(blob)
    pk, gk = keys.public_key_bytes(), keys.galois_key_bytes(layout.stride_bits)
    (folder / "pk").write_bytes(pk)
    (folder / "gk").write_bytes(gk)
    np.save(folder / "y.npy", y)
    y_bits = y_scale_bits_for(y, layout.data_scale_bits)
    groups = len(layout.result_groups(dim))
    session_keys = SessionKeys(pset, pk, gk, 1 << 22)
    results: dict[str, tuple[list[bytes], float]] = {}
    for name, ex in executors.items():
        out["phases_s"][name]["upload_check"] = check
        if ex.distributed:
            res, seconds = timed(
                lambda: sharded_cross_covariance(
                    ex, session_keys, layout, paths, y, y_bits, None, args.shard_ciphertexts
                )
            )
        elif args.local_provider_up_to and n > args.local_provider_up_to:
            out.setdefault("errors", {})[name] = args.local_provider_skip_reason
            out["phases_s"][name].update(provider=None, total=None)
            continue
        else:
            job = CrossCovarianceJob(
                parameter_set=pset,
                layout=layout,
                ciphertext_paths=tuple(paths),
                y_path=str(folder / "y.npy"),
                group_start=0,
                group_stop=0,
                y_scale_bits=y_bits,
                max_ciphertext_bytes=1 << 22,
                public_key_path=str(folder / "pk"),
                galois_keys_path=str(folder / "gk"),
            )
            try:
                res, seconds = timed(lambda: _pool_cross_covariance(job, args.pool_workers or args.workers, groups))
            except Exception as exc:  # e.g. a worker stopped by the out-of-memory killer: a result too
                out.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
                out["phases_s"][name].update(provider=None, total=None)
                print(f"[bench] provider n={n} {name} failed: {exc}", file=sys.stderr)
                continue
        results[name] = res
        out["phases_s"][name]["provider"] = seconds
        out["phases_s"][name]["total"] = sum(out["phases_s"][name].values())
        print(f"[bench] provider n={n} {name}: {seconds:.1f} s", file=sys.stderr)
    shape = PackedResultShape.of(layout, dim)
    exact = x_unit.T @ y
    out["max_abs_error"] = {
        name: float(np.max(np.abs(decrypt_cross_covariance(keys, shape, res[0]) - exact)))
        for name, res in results.items()
    }
    out["per_shard_s"] = _per_shard(args, emb, keys, x_unit, layout, paths, y, y_bits, session_keys, blobs, he, check)
    return out


def _per_shard(
    args: argparse.Namespace,
    emb: dict[str, Any],
    keys: ClientKeys,
    x_unit: np.ndarray,
    layout: CrossCovarianceLayout,
    paths: list[str],
    y: np.ndarray,
    y_bits: int,
    session_keys: SessionKeys,
    blobs: list[bytes],
    he: Any,
    check: float,
) -> dict[str, Any]:
    """One shard of each phase, in this process on one core (what a cluster worker does per task)."""
    local = AlignmentShards(LocalExecutor())
    one_chunk = timed(lambda: next(iter(local.encrypt(keys, x_unit, layout, args.chunk))))[1]
    state = load_worker_state(session_keys)
    shards = session_shards(layout, paths, y, y_bits, None, args.shard_ciphertexts)
    first = next(shards)
    second = next(shards, first)
    p1, partial = timed(lambda: shard_partial(state, first))
    p2 = shard_partial(state, second)
    _, add = timed(lambda: add_partials(session_keys.parameter_set, 1 << 22, p1, p2))
    chunk_bytes = sum(len(b) for b in blobs[: args.chunk])
    partial_bytes = sum(len(b) for part in p1.replies if part for b in part)
    return {
        "embed": {"texts": args.embed_shard_texts, "seconds": emb["shard_seconds"]},
        "encrypt": {"ciphertexts": args.chunk, "seconds": one_chunk, "bytes": chunk_bytes},
        "upload_check": {"ciphertexts": args.chunk, "seconds": check * args.chunk / len(blobs)},
        "provider_partial": {"ciphertexts": args.shard_ciphertexts, "seconds": partial, "bytes": partial_bytes},
        "reduce_pair": {"seconds": add},
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    # The local cluster listens on loopback, and its workers import this checkout.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    from helix_shards.ray_executor import RayExecutor

    ray_executor = RayExecutor(address=args.ray_address, workers=args.workers)
    executors: dict[str, ShardExecutor] = {"local": LocalExecutor(), "ray": ray_executor}
    try:
        sizes = [_size(n, args, work, executors) for n in args.sizes]
    finally:
        ray_executor.close()
    return {
        "machine": {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg()[0]},
        "settings": {
            "chunk_ciphertexts": args.chunk,
            "shard_ciphertexts": args.shard_ciphertexts,
            "embed_shard_texts": args.embed_shard_texts,
            "workers": args.workers,
            "pool_workers": args.pool_workers or args.workers,
        },
        "sizes": sizes,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def project(size: dict[str, Any], nodes: int, cores: int, gbit_per_s: float) -> dict[str, float]:
    """Seconds on `nodes` machines of `cores` cores from the per-shard costs: every phase's shards spread
    over all cores, the tree's depth of additions, and the ciphertexts over the client's link once."""
    ps, n, lanes = size["per_shard_s"], size["texts"], nodes * cores
    shards = -(-size["ciphertexts"] // ps["provider_partial"]["ciphertexts"])

    def waves(count: int) -> int:
        return -(-count // lanes)

    embed = waves(-(-n // ps["embed"]["texts"])) * ps["embed"]["seconds"]
    encrypt = waves(size["chunks"]) * ps["encrypt"]["seconds"]
    transfer = size["upload_bytes"] * 8 / (gbit_per_s * 1e9)
    check = size["chunks"] * ps["upload_check"]["seconds"] / cores  # the provider's front end checks chunks
    provider = waves(shards) * ps["provider_partial"]["seconds"]
    reduce = max(0, (shards - 1).bit_length()) * ps["reduce_pair"]["seconds"]
    # Encryption streams into the upload: the slower of the two sets the pace.
    total = embed + max(encrypt, transfer, check) + provider + reduce
    return {
        "embed": embed,
        "encrypt_upload": max(encrypt, transfer, check),
        "provider": provider + reduce,
        "total": total,
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        "| texts | executor | embed s | encrypt s | upload check s | provider s | total s | max abs error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        for name, ph in size["phases_s"].items():
            embed = f"{ph['embed']:.1f}" + ("" if size["embedding_measured"] else " (projected)")
            failed = size.get("errors", {}).get(name)
            provider, total = (f"failed: {failed}", "-") if failed else (f"{ph['provider']:.1f}", f"{ph['total']:.1f}")
            error = "-" if failed else f"{size['max_abs_error'][name]:.1e}"
            rows.append(
                f"| {size['texts']:,} | {name} | {embed} | {ph['encrypt']:.1f} | {ph['upload_check']:.1f} | "
                f"{provider} | {total} | {error} |"
            )
    rows += ["", "Per shard, one core each:", ""]
    rows += [
        "| texts | ring | embed | encrypt | upload | provider partial | reduce (one addition) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        ps = size["per_shard_s"]
        rows.append(
            f"| {size['texts']:,} | {size['parameter_set']}, {size['ciphertexts']:,} ciphertexts | "
            f"{ps['embed']['texts']} texts: {ps['embed']['seconds']:.2f} s | "
            f"{ps['encrypt']['ciphertexts']} ciphertexts: {ps['encrypt']['seconds']:.3f} s | "
            f"{ps['encrypt']['bytes'] / 1e6:.2f} MB, checked in {ps['upload_check']['seconds']:.3f} s | "
            f"{ps['provider_partial']['ciphertexts']} ciphertexts: {ps['provider_partial']['seconds']:.2f} s, "
            f"{ps['provider_partial']['bytes'] / 1e6:.2f} MB | {ps['reduce_pair']['seconds']:.3f} s |"
        )
    rows += ["", "Projection, 10 nodes of 8 cores, 1 Gbit/s from the client (see docs/scaling.md):", ""]
    rows += ["| texts | embed s | encrypt + upload s | provider s | total s |", "|---|---|---|---|---|"]
    for size in result["sizes"]:
        p = project(size, nodes=10, cores=8, gbit_per_s=1.0)
        rows.append(
            f"| {size['texts']:,} | {p['embed']:.1f} | {p['encrypt_upload']:.1f} | {p['provider']:.1f} | "
            f"{p['total']:.1f} |"
        )
    m = result["machine"]
    rows.append(
        f"\nMeasured {result['measured_at']} on {m['cores']} cores (load average {m['load_average_at_end']:.1f} "
        f"at the end); {result['settings']['workers']} Ray workers, "
        f"{result['settings'].get('pool_workers', result['settings']['workers'])} provider pool workers."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.alignment_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[16384, 65536], help="numbers of public texts")
    ap.add_argument("--quick", action="store_true", help="one small size (512 texts): a smoke run")
    ap.add_argument("--chunk", type=int, default=24, help="ciphertexts per upload chunk (the agent's default)")
    ap.add_argument("--shard-ciphertexts", type=int, default=256, help="ciphertexts per provider shard on Ray")
    ap.add_argument("--embed-shard-texts", type=int, default=2048, help="texts per embedding shard on Ray")
    ap.add_argument("--embed-up-to", type=int, default=16384, help="embed at most this many texts; project beyond")
    ap.add_argument("--workers", type=int, default=2, help="provider pool workers and Ray workers")
    ap.add_argument("--pool-workers", type=int, default=0, help="provider pool workers if not --workers (memory)")
    ap.add_argument("--local-provider-up-to", type=int, default=0, help="skip the pool path above this many texts")
    ap.add_argument(
        "--local-provider-skip-reason",
        default="not run: the whole-session path held 6.7 GB per worker at 65,536 texts (out of memory here)",
    )
    ap.add_argument("--ray-address", default=None, help="a Ray cluster to join (default: start a local one)")
    ap.add_argument("--cache-dir", default=str(ROOT / ".helix" / "bench-embeddings"), help="embedding cache")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "alignment_scale.json"))
    ap.add_argument("--doc", default="", help="markdown report path ('' to skip)")
    ap.add_argument("--report-only", action="store_true", help="measure nothing: re-render from --out")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.embed_shard_texts, args.shard_ciphertexts, args.chunk = [512], 128, 16, 8
    measure_and_report(args, lambda work: run(args, work), render, DOC_HEAD, "helix-alignment-scale-")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
