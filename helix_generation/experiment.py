"""One full experiment for a pair of causal LMs: tokenizer metrics, maps, controls, evaluations.

Everything runs in one process and writes its JSON after each stage, so an interrupted run keeps
what it measured. Systems evaluated: each model on its own ("native"), both stitched directions,
each model stitched to itself through a *fitted* map (identity control: what the fit and the text
round trip alone cost), and both directions through a map fitted on shuffled pairs (a floor).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .data import datasets_root, load_alpaca, load_mmlu
from .decode import Generation, Stitched, native
from .fit import DEFAULT_METHOD, Direction, fit_maps, save_map
from .instruct import cosine_rows, next_token_agreement, perplexity
from .mmlu import evaluate_mmlu, shots_by_subject
from .models import CausalLM, load_causal_lm
from .tokens import tokenizer_metrics


@dataclass(frozen=True)
class PairConfig:
    """Sizes of one run (defaults: the issue's; shrink them on a busy machine and say so)."""

    a: str
    b: str
    train_texts: int = 4000
    max_tokens: int = 128
    method: str = DEFAULT_METHOD
    heldout_texts: int = 50
    mmlu_questions: int = 100
    mmlu_shots: int = 0
    mmlu_new_tokens: int = 32
    alpaca_prompts: int = 100
    alpaca_new_tokens: int = 128
    embedder: str = "minilm"
    seed: int = 0
    controls: bool = True


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_pair(cfg: PairConfig, out: Path, maps_dir: Path | None = None) -> dict[str, Any]:
    """Run every stage for ``cfg`` and write the results to ``out`` (JSON) as they come."""
    import torch

    root = datasets_root()
    result: dict[str, Any] = {"config": asdict(cfg), "torch_threads": torch.get_num_threads(), "stages": {}}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    _log(f"loading {cfg.a} and {cfg.b}")
    models = [load_causal_lm(cfg.a), load_causal_lm(cfg.b)]
    names = [m.name for m in models]
    result["models"] = {
        n: {"dim": m.dim, "layers": m.model.config.num_hidden_layers} for n, m in zip(names, models, strict=True)
    }
    heldout_rows = load_alpaca(root, "test", cfg.heldout_texts, offset=cfg.alpaca_prompts)
    prompt_rows = load_alpaca(root, "test", cfg.alpaca_prompts)

    _log("tokenizer metrics")
    all_test = [r.text for r in load_alpaca(root, "test")]
    result["tokenizers"] = tokenizer_metrics(models[0].tokenizer, models[1].tokenizer, all_test).as_dict()
    save()

    directions = [Direction(0, 1), Direction(1, 0)]
    if cfg.controls:
        directions += [Direction(0, 0), Direction(1, 1), Direction(0, 1, shuffled=True), Direction(1, 0, True)]
    train = [r.text for r in load_alpaca(root, "train", cfg.train_texts)]
    _log(f"fitting {len(directions)} maps on {len(train)} texts")
    fitted = fit_maps(models, directions, train, max_tokens=cfg.max_tokens, method=cfg.method, progress=True)
    result["fit"] = {
        "texts": fitted.texts,
        "tokens": dict(zip(names, fitted.tokens, strict=True)),
        "seconds": fitted.seconds,
        "maps": {d.label(names): _brief(fitted.info[d]) for d in directions},
    }
    if maps_dir is not None:
        for d in directions:
            tag = d.label(names).replace("->", "_to_").replace(" (shuffled)", "_shuffled")
            save_map(maps_dir / f"{tag}.npz", fitted.maps[d], {"label": d.label(names), **_brief(fitted.info[d])})
    save()

    systems: dict[str, Stitched] = {f"{n} native": native(m) for n, m in zip(names, models, strict=True)}
    for d in directions:
        label = d.label(names)
        if d.source == d.target:
            label += " (fitted identity control)"
        systems[label] = Stitched(models[d.source], models[d.target], fitted.maps[d])
    result["systems"] = {k: {"source": s.source.name, "target": s.target.name} for k, s in systems.items()}

    _log(f"next-token agreement on {len(heldout_rows)} held-out texts")
    held = [r.text for r in heldout_rows]
    result["agreement"] = {}
    for label, system in systems.items():
        if system.amap is None:
            continue
        result["agreement"][label] = _timed(partial(next_token_agreement, system, held, cfg.max_tokens))
        _log(f"  {label}: {result['agreement'][label]['agreement']:.3f}")
        save()

    questions = load_mmlu(root, "test", cfg.mmlu_questions, cfg.seed)
    shots = shots_by_subject(load_mmlu(root, "dev", None), cfg.mmlu_shots) if cfg.mmlu_shots else None
    _log(f"MMLU: {len(questions)} questions, {cfg.mmlu_shots}-shot")
    result["mmlu"] = {}
    for label, system in systems.items():
        result["mmlu"][label] = evaluate_mmlu(system, questions, shots=shots, max_new_tokens=cfg.mmlu_new_tokens)
        r = result["mmlu"][label]
        _log(f"  {label}: loglik {r['loglik_accuracy']:.2f} generative {r['generative_accuracy']:.2f}")
        save()

    _log(f"Alpaca: {len(prompt_rows)} prompts, up to {cfg.alpaca_new_tokens} new tokens")
    outputs: dict[str, list[Generation]] = {}
    for label, system in systems.items():
        outputs[label] = [system.generate(r.prompt, cfg.alpaca_new_tokens) for r in prompt_rows]
        gens = outputs[label]
        _log(f"  {label}: {np.mean([g.tokens_per_second for g in gens]):.1f} tok/s")
    result["alpaca"] = _alpaca_metrics(cfg, systems, outputs, [r.prompt for r in prompt_rows], names)
    result["samples"] = [
        {"instruction": r.instruction, "input": r.input, **{k: outputs[k][i].text for k in systems}}
        for i, r in enumerate(prompt_rows[:6])
    ]
    save()
    _log(f"done: {out}")
    return result


def _timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    res = fn()
    return {**res, "seconds": time.perf_counter() - start}


def _brief(info: dict[str, Any]) -> dict[str, Any]:
    """Map info without the long per-kappa loss list."""
    return {k: v for k, v in info.items() if k not in {"cv_losses", "grid"}}


def _alpaca_metrics(
    cfg: PairConfig,
    systems: dict[str, Stitched],
    outputs: dict[str, list[Generation]],
    prompts: list[str],
    names: list[str],
) -> dict[str, Any]:
    from helix_embeddings import load_embedder

    embedder = load_embedder(cfg.embedder)
    vectors = {k: embedder.embed([g.text for g in gens]) for k, gens in outputs.items()}
    natives = {s.source.name: f"{s.source.name} native" for s in systems.values() if s.amap is None}
    metrics: dict[str, Any] = {"embedder": cfg.embedder, "prompts": len(prompts)}
    for label, system in systems.items():
        gens = outputs[label]
        target: CausalLM = system.target
        row: dict[str, Any] = {
            "tokens_per_second": float(np.mean([g.tokens_per_second for g in gens])),
            "mean_new_tokens": float(np.mean([len(g.ids) for g in gens])),
            "stopped_eos": sum(g.stopped == "eos" for g in gens) / len(gens),
            "source_tokens_computed_per_new_token": sum(g.source_tokens_computed for g in gens)
            / max(1, sum(len(g.ids) for g in gens)),
            "empty_outputs": sum(not g.text.strip() for g in gens),
        }
        for name in names:
            ref = natives[name]
            row[f"cosine_to_{name}_native"] = float(np.mean(cosine_rows(vectors[label], vectors[ref])))
        ppl = [perplexity(target, p, g.text) for p, g in zip(prompts, gens, strict=True)]
        finite = [v for v in ppl if np.isfinite(v)]
        row["target_perplexity_median"] = float(np.median(finite)) if finite else float("nan")
        metrics[label] = row
    return metrics
