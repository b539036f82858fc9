"""python -m benchmarks.extraction [--quick] [--out PATH] [--doc PATH] [--seed N] [--report-only]

What a malicious client pays to extract a head, under each output mode, with and without noise flooding,
and an honest client's throughput and error on the same head in the same run. The client holds its own
keys; the provider's side is its real circuit (`benchmarks.extraction_oracle`); the attacks are in
`benchmarks.extraction_attacks`. From the query counts follows the daily query budget per head below
which one day's queries recover neither W (to 1e-3 relative error) nor a surrogate that decides like
the head on 99% of held-out inputs.

Heads and inputs are synthetic: W with i.i.d. N(0, 1) entries, b with N(0, 0.25) entries, and held-out
inputs uniform on the unit sphere (the shape of normalised sentence embeddings), so that logits are of
order 1, as for a trained head on normalised embeddings. The default run measures d = 384 with k = 2 and
k = 4 at flooding 0, 36 and 44 bits (ranking: 0 and 36), each attack stopped at 30,000 queries; --quick is
a smoke test on a small head.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helix_he.keys import ClientKeys
from helix_he.linear_head import LOGITS, OUTPUT_MODES, ranking_from_differences

from .config import PARAMETER_SET
from .extraction_attacks import Truth, logits_attack, ranking_attack
from .extraction_oracle import MAX_QUERIES_PER_REQUEST, HeadOracle
from .extraction_report import render_markdown, write_doc_section
from .runner import machine_info

ROOT = Path(__file__).resolve().parent.parent
W_TARGET = 1e-3
AGREEMENT_TARGET = 0.99


@dataclass(frozen=True)
class ExtractionMode:
    """Which heads are attacked and how hard."""

    name: str
    heads: tuple[tuple[int, int], ...]  # (d, k)
    flooding_bits: tuple[int, ...]  # logits heads (cheap to attack)
    ranking_flooding_bits: tuple[int, ...]
    attack_budget: int  # queries an attack may spend before it stops
    bisection_rounds: int
    held_out: int  # inputs on which decisions are compared
    honest_queries: int  # single-query requests' worth of honest traffic per case

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_mode(quick: bool) -> ExtractionMode:
    if quick:
        return ExtractionMode("quick", ((16, 3),), (0, 36), (0, 36), 1_500, 10, 2_000, 16)
    return ExtractionMode("default", ((384, 2), (384, 4)), (0, 36, 44), (0, 36), 30_000, 14, 20_000, 256)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_head(rng: np.random.Generator, d: int, k: int, held_out: int) -> Truth:
    g = rng.normal(size=(held_out, d))
    return Truth(rng.normal(size=(d, k)), rng.normal(scale=0.5, size=k), g / np.linalg.norm(g, axis=1, keepdims=True))


def honest_client(oracle: HeadOracle, truth: Truth, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    """An honest client's unit-norm queries in one single-query request (and, for logits, one batch):
    throughput and how far its answers are from the plaintext head."""
    d = oracle.dim
    g = rng.normal(size=(queries, d))
    x = g / np.linalg.norm(g, axis=1, keepdims=True)
    z = x @ truth.weight + truth.bias
    before = oracle.seconds
    answers = oracle.ask(x)
    seconds = oracle.seconds - before
    out: dict[str, Any] = {"queries": queries, "queries_per_s": queries / seconds}
    if oracle.output_mode == LOGITS:
        out["max_abs_logit_error"] = float(np.abs(answers - z).max())
        out["label_agreement"] = float(np.mean(np.argmax(answers, axis=1) == np.argmax(z, axis=1)))
        batch = rng.normal(size=(MAX_QUERIES_PER_REQUEST, d))
        batch /= np.linalg.norm(batch, axis=1, keepdims=True)
        before = oracle.seconds
        batch_answers = oracle.ask_batch(batch)
        out["batch_queries_per_s"] = MAX_QUERIES_PER_REQUEST / (oracle.seconds - before)
        out["batch_max_abs_logit_error"] = float(np.abs(batch_answers - (batch @ truth.weight + truth.bias)).max())
    else:
        labels = ranking_from_differences(answers, oracle.num_classes)[:, 0]
        out["max_abs_logit_error"] = None  # a ranking reply carries no logits
        out["label_agreement"] = float(np.mean(labels == np.argmax(z, axis=1)))
    return out


def daily_budget(summary: dict[str, Any]) -> dict[str, Any]:
    """The budget below which one day's queries recover neither target: the fewest queries that reached
    one. If neither was reached, the attack's spend is only a lower bound."""
    reached = [summary[t]["queries"] for t in ("w", "surrogate") if summary[t]["reached"]]
    if not reached:
        return {"infeasible_below": summary["queries_spent"], "lower_bound": True, "days_at": {}}
    need = min(reached)
    return {
        "infeasible_below": need,
        "lower_bound": False,
        "days_at": {str(b): math.ceil(need / b) for b in (100, 1_000, 10_000)},
    }


def run_case(
    keys: ClientKeys, truth: Truth, mode: ExtractionMode, output_mode: str, bits: int, seed: int
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    honest = honest_client(
        HeadOracle(keys, truth.weight, truth.bias, output_mode=output_mode, noise_flooding_bits=bits),
        truth,
        mode.honest_queries,
        rng,
    )
    oracle = HeadOracle(keys, truth.weight, truth.bias, output_mode=output_mode, noise_flooding_bits=bits)
    if output_mode == LOGITS:
        progress = logits_attack(oracle, truth, budget=mode.attack_budget)
    else:
        progress = ranking_attack(
            oracle, truth, mode.attack_budget, rounds=mode.bisection_rounds, seed=seed, w_target=W_TARGET
        )
    summary = progress.summary(W_TARGET, AGREEMENT_TARGET)
    return {
        "output_mode": output_mode,
        "flooding_bits": bits,
        "honest": honest,
        "attack": {**summary, "requests": oracle.requests, "checkpoints": progress.checkpoints},
        "daily_budget": daily_budget(summary),
    }


def run(mode: ExtractionMode, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    machine = machine_info()
    keys = ClientKeys.generate(PARAMETER_SET)  # the attacker's own key pair
    heads = []
    for d, k in mode.heads:
        truth = synthetic_head(np.random.default_rng([seed, d, k]), d, k, mode.held_out)
        cases = []
        for output_mode in OUTPUT_MODES:
            for bits in mode.flooding_bits if output_mode == LOGITS else mode.ranking_flooding_bits:
                t = time.perf_counter()
                case = run_case(keys, truth, mode, output_mode, bits, seed=seed * 1000 + bits)
                attack = case["attack"]
                _log(
                    f"[extraction] d={d} k={k} {output_mode} flood={bits}: W {_reach(attack['w'])}, "
                    f"surrogate {_reach(attack['surrogate'])} ({time.perf_counter() - t:.1f} s)"
                )
                cases.append(case)
        heads.append({"d": d, "k": k, "cases": cases})
    return {
        "command": "python -m benchmarks.extraction" + (" --quick" if mode.name == "quick" else ""),
        "mode": mode.name,
        "config": mode.to_json(),
        "parameter_set": PARAMETER_SET,
        "inputs": "synthetic: W ~ N(0, 1), b ~ N(0, 0.25), held-out inputs uniform on the unit sphere",
        "targets": {"w_relative_error": W_TARGET, "agreement": AGREEMENT_TARGET},
        "output_modes": list(OUTPUT_MODES),
        "machine": machine,
        "heads": heads,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runtime_s": time.perf_counter() - t0,
    }


def _reach(target: dict[str, Any]) -> str:
    return f"{target['queries']} queries" if target["reached"] else "not reached"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.extraction",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="one small head, small budgets (a smoke test, < 1 min)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "extraction.json"), help="JSON results")
    ap.add_argument(
        "--doc",
        default=str(ROOT / "docs" / "security.md"),
        help="markdown file whose 'Extraction cost, measured' block is rewritten ('' to skip)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", action="store_true", help="measure nothing: re-render --doc from --out")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        results = json.loads(out.read_text(encoding="utf-8"))
    else:
        results = run(make_mode(args.quick), seed=args.seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        _log(f"[extraction] wrote {out} ({results['runtime_s']:.1f} s)")
    text = render_markdown(results)
    print(text)
    if args.doc:
        write_doc_section(Path(args.doc), text)
        _log(f"[extraction] wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
