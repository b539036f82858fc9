"""Markdown tables and plots from ``helix-generate eval`` result files (for docs/generation.md).

Kept apart from the experiment so tables can be rebuilt from saved JSON without loading a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _short(label: str, names: dict[str, str]) -> str:
    for long, short in names.items():
        label = label.replace(long, short)
    return label


def _short_names(result: dict[str, Any]) -> dict[str, str]:
    return {n: n.split("-")[0] for n in result["models"]}


def tables(result: dict[str, Any]) -> str:
    """Markdown tables of one result file (whatever stages it holds)."""
    names = _short_names(result)
    out: list[str] = []
    tok = result.get("tokenizers")
    if tok:
        a, b = list(names.values())
        out += [
            "| pair | vocab Jaccard | exact match A->B | exact match B->A | texts |",
            "|---|---|---|---|---|",
            f"| {a} / {b} | {tok['vocab_jaccard']:.3f} | {tok['exact_match_a_to_b']:.3f} | "
            f"{tok['exact_match_b_to_a']:.3f} | {tok['texts']} |",
            "",
        ]
    fit = result.get("fit")
    if fit:
        out += ["| map | token pairs | method | kappa |", "|---|---|---|---|"]
        for label, info in fit["maps"].items():
            out.append(f"| {_short(label, names)} | {info['pairs']} | {info['method']} | {info.get('kappa', '')} |")
        out.append("")
    agreement = result.get("agreement")
    if agreement:
        out += [
            "| map | next-token agreement (all pairs) | at aligned boundaries | mapped-state cosine | "
            "top-1 of stitched / target's own (aligned) |",
            "|---|---|---|---|---|",
        ]
        for label, r in agreement.items():
            out.append(
                f"| {_short(label, names)} | {r['agreement']:.3f} | {r['agreement_aligned']:.3f} | "
                f"{r['mapped_cosine']:.3f} | {r['stitched_top1_aligned']:.3f} / {r['target_top1_aligned']:.3f} |"
            )
        out.append("")
    mmlu = result.get("mmlu")
    if mmlu:
        out += [
            "| system | MMLU log-likelihood acc | generative acc | answered | predicted A/B/C/D (loglik) |",
            "|---|---|---|---|---|",
        ]
        for label, r in mmlu.items():
            counts = "/".join(str(c) for c in r["loglik_prediction_counts"])
            out.append(
                f"| {_short(label, names)} | {r['loglik_accuracy']:.2f} | {r.get('generative_accuracy', 0):.2f} | "
                f"{r.get('answered_fraction', 0):.2f} | {counts} |"
            )
        out.append("")
    alpaca = result.get("alpaca")
    if alpaca:
        a, b = list(names)
        out += [
            f"| system | cosine to {names[a]} native | cosine to {names[b]} native | target perplexity (median) | "
            "new tokens (mean) | tok/s | source tokens run per new token |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, r in alpaca.items():
            if not isinstance(r, dict):
                continue
            out.append(
                f"| {_short(label, names)} | {r[f'cosine_to_{a}_native']:.3f} | {r[f'cosine_to_{b}_native']:.3f} | "
                f"{r['target_perplexity_median']:.1f} | {r['mean_new_tokens']:.1f} | {r['tokens_per_second']:.1f} | "
                f"{r['source_tokens_computed_per_new_token']:.2f} |"
            )
        out.append("")
    return "\n".join(out)


def plot(results: Sequence[dict[str, Any]], path: Path) -> None:
    """Paper Figure 3 (similarity of stitched output to source vs target native output) and quality vs
    exact token match rate (next-token agreement per direction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for result in results:
        names = _short_names(result)
        longs = list(names)
        tok = result.get("tokenizers", {})
        for label, r in result.get("alpaca", {}).items():
            if not isinstance(r, dict) or " native" in label:
                continue
            src, _, rest = label.partition("->")
            tgt = rest.split(" ")[0]
            x, y = r[f"cosine_to_{src}_native"], r[f"cosine_to_{tgt}_native"]
            marker = "x" if "shuffled" in label else ("s" if src == tgt else "o")
            left.scatter([x], [y], marker=marker)
            left.annotate(_short(label, names).replace(" (fitted identity control)", " (id)"), (x, y), fontsize=7)
        for label, r in result.get("agreement", {}).items():
            if "shuffled" in label or "identity" in label:
                continue
            forward = label.startswith(longs[0])
            rate = tok.get("exact_match_a_to_b" if forward else "exact_match_b_to_a", 0.0)
            right.scatter([rate], [r["agreement"]])
            right.annotate(_short(label, names), (rate, r["agreement"]), fontsize=7)
    left.plot([0, 1], [0, 1], lw=0.5, color="grey")
    left.set_xlabel("cosine to the source's native output")
    left.set_ylabel("cosine to the target's native output")
    left.set_title("Stitched outputs (o cross-model, s identity control, x shuffled)", fontsize=9)
    right.set_xlabel("exact token match rate (source -> target)")
    right.set_ylabel("next-token agreement with the target")
    right.set_title("Quality vs tokenizer compatibility", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def directions(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cross-model direction: its tokenizer metrics and its quality measures."""
    rows = []
    for result in results:
        longs = list(result["models"])
        tok = result.get("tokenizers", {})
        for label, r in result.get("agreement", {}).items():
            if "shuffled" in label or "identity" in label:
                continue
            forward = label.startswith(longs[0] + "->")
            row = {
                "direction": _short(label, _short_names(result)),
                "exact_match": tok.get("exact_match_a_to_b" if forward else "exact_match_b_to_a", float("nan")),
                "jaccard": tok.get("vocab_jaccard", float("nan")),
                "agreement": r["agreement"],
            }
            alpaca = result.get("alpaca", {}).get(label)
            if isinstance(alpaca, dict):
                row["cosine_to_target"] = alpaca[f"cosine_to_{longs[1] if forward else longs[0]}_native"]
            rows.append(row)
    return rows


def correlations(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Pearson r of each quality measure with each tokenizer metric (needs at least 3 directions)."""
    out: dict[str, float] = {}
    for quality in ("agreement", "cosine_to_target"):
        for metric in ("exact_match", "jaccard"):
            pts = [(r[metric], r[quality]) for r in rows if quality in r]
            if len(pts) >= 3:
                x, y = np.array(pts).T
                if x.std() > 0 and y.std() > 0:
                    out[f"{quality}~{metric}"] = float(np.corrcoef(x, y)[0, 1])
    return out


def report(paths: Sequence[Path], plot_path: Path | None = None) -> str:
    results = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    if plot_path is not None:
        plot(results, plot_path)
    parts = [f"### {p.name}\n\n{tables(r)}" for p, r in zip(paths, results, strict=True)]
    rows = directions(results)
    if rows:
        parts.append("### Quality vs tokenizer compatibility, per direction\n")
        parts.append("| direction | exact match | vocab Jaccard | next-token agreement | cosine to target native |")
        parts.append("|---|---|---|---|---|")
        for r in rows:
            cos = f"{r['cosine_to_target']:.3f}" if "cosine_to_target" in r else ""
            parts.append(
                f"| {r['direction']} | {r['exact_match']:.3f} | {r['jaccard']:.3f} | {r['agreement']:.3f} | {cos} |"
            )
        corr = correlations(rows)
        parts.append("")
        parts.append("Pearson r over these directions: " + (", ".join(f"{k} {v:.2f}" for k, v in corr.items()) or "-"))
    return "\n".join(parts)
