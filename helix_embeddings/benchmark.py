"""Measure embedding throughput: ``python -m helix_embeddings.benchmark [SPEC ...]``.

Why a module: docs/embedders.md quotes texts/s per local backend, and anyone
should be able to re-measure on their own machine the same way: 1000 short
sentences, after a 32-text warm-up, best and median of ``--repeats`` runs
(the best is the least disturbed by other processes on a shared machine).
Loading time (including a one-off GGUF conversion) is reported separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from .registry import load_embedder

DEFAULT_SPECS = ["minilm", "wordllama", "spacy", "glove", "smollm2", "gemma3"]


def sentences(n: int = 1000) -> list[str]:
    """The benchmark corpus: short, distinct, English sentences (~17 tokens each)."""
    return [f"Short sentence number {i} talks about topic {i % 37} in a few words." for i in range(n)]


def measure(spec: str, n: int = 1000, repeats: int = 3) -> dict[str, float | str | int]:
    """Load ``spec`` and time ``embed`` on ``n`` sentences ``repeats`` times."""
    start = time.perf_counter()
    emb = load_embedder(spec)
    load_s = time.perf_counter() - start
    texts = sentences(n)
    emb.embed(texts[:32])
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb.embed(texts)
        runs.append(time.perf_counter() - start)
    best, median = min(runs), statistics.median(runs)
    return {
        "model_id": emb.model_id,
        "dim": emb.dim,
        "load_s": load_s,
        "best_s": best,
        "median_s": median,
        "texts_per_s": n / best,
    }


def main(argv: list[str] | None = None) -> None:
    """Print one markdown table row per spec."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"cores={os.cpu_count()} loadavg_before={os.getloadavg()[0]:.2f}")
    print("| model_id | dim | load s | best s / 1000 | median s | texts/s (best) |")
    print("|---|---|---|---|---|---|")
    for spec in args.specs:
        try:
            r = measure(spec, args.n, args.repeats)
        except ImportError as exc:
            print(f"| {spec} | - | skipped: {exc} | | | |")
            continue
        print(
            f"| {r['model_id']} | {r['dim']} | {r['load_s']:.1f} | {r['best_s']:.3f} | {r['median_s']:.3f} "
            f"| {r['texts_per_s']:.0f} |",
            flush=True,
        )
    print(f"loadavg_after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
