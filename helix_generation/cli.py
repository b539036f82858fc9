"""``helix-generate``: cross-model generation through a linear map, for any two causal LMs.

Subcommands:

* ``tokenizers A B``: vocabulary Jaccard and exact token match rates on Alpaca test texts;
* ``fit SOURCE TARGET --out map.npz``: fit the token-level map from streamed statistics;
* ``generate SOURCE TARGET --map map.npz --prompt ...``: stitched greedy decoding (``--identity``
  stitches a model to itself through the exact identity; ``--native`` lets the target decode alone);
* ``eval A B --out result.json``: the whole experiment (both directions, controls, MMLU, Alpaca);
* ``report result.json ... [--plot fig.png]``: markdown tables and the figure from result files;
* ``private-mc PROVIDER CLIENT --out result.json``: MMLU answered privately through PROVIDER's answer-letter
  head by a client embedding with CLIENT, through real provider and agent daemons (see :mod:`.private_mc`).

Models are the project's embedder specs of causal LMs: ``smollm2``, ``gemma3``, ``causal-lm:<path>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .data import datasets_root, load_alpaca


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def cmd_tokenizers(args: argparse.Namespace) -> int:
    from .models import load_causal_lm
    from .tokens import tokenizer_metrics

    a, b = load_causal_lm(args.a), load_causal_lm(args.b)
    texts = [r.text for r in load_alpaca(datasets_root(), "test", args.texts)]
    print(json.dumps({"a": a.name, "b": b.name, **tokenizer_metrics(a.tokenizer, b.tokenizer, texts).as_dict()}))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .fit import Direction, fit_maps, save_map
    from .models import load_causal_lm

    models = [load_causal_lm(args.source), load_causal_lm(args.target)]
    direction = Direction(0, 1, shuffled=args.shuffled)
    texts = [r.text for r in load_alpaca(datasets_root(), "train", args.train_texts)]
    report = fit_maps(models, [direction], texts, max_tokens=args.max_tokens, method=args.method, progress=True)
    info = {"source": models[0].name, "target": models[1].name, "texts": report.texts, **report.info[direction]}
    info.pop("cv_losses", None)
    save_map(args.out, report.maps[direction], info)
    print(json.dumps({"out": str(args.out), "seconds": round(report.seconds, 1), **info}, default=str))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .decode import Stitched, native
    from .fit import identity_map, load_map
    from .models import load_causal_lm

    target = load_causal_lm(args.target)
    if args.native:
        system = native(target)
    else:
        source = target if args.source == args.target else load_causal_lm(args.source)
        if args.identity:
            amap = identity_map(source.dim)
        elif args.map is not None:
            amap = load_map(args.map)[0]
        else:
            print("give --map, --identity or --native", file=sys.stderr)
            return 2
        system = Stitched(source, target, amap, mode=args.mode, cache=not args.no_cache)
    g = system.generate(args.prompt, args.max_new_tokens)
    print(g.text)
    print(
        json.dumps(
            {
                "new_tokens": len(g.ids),
                "stopped": g.stopped,
                "seconds": round(g.seconds, 2),
                "tokens_per_second": round(g.tokens_per_second, 2),
                "source_tokens_computed": g.source_tokens_computed,
            }
        ),
        file=sys.stderr,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .experiment import PairConfig, run_pair

    cfg = PairConfig(
        a=args.a,
        b=args.b,
        train_texts=args.train_texts,
        max_tokens=args.max_tokens,
        method=args.method,
        heldout_texts=args.heldout_texts,
        mmlu_questions=args.mmlu_questions,
        mmlu_shots=args.mmlu_shots,
        mmlu_new_tokens=args.mmlu_new_tokens,
        alpaca_prompts=args.alpaca_prompts,
        alpaca_new_tokens=args.alpaca_new_tokens,
        embedder=args.embedder,
        seed=args.seed,
        controls=not args.no_controls,
    )
    run_pair(cfg, args.out, args.maps_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import report

    print(report(args.results, args.plot))
    return 0


METHOD_HELP = (
    "the agent's map method (helix_alignment.methods); *_cv methods need a corpus of 2 x folds x (dim + 1) texts"
)


def cmd_private_mc(args: argparse.Namespace) -> int:
    from .mc_daemons import default_work_dir, running_pair
    from .private_mc import PrivateMcConfig, run_private_mc

    cfg = PrivateMcConfig(
        provider_model=args.provider,
        client_model=args.client,
        questions=args.questions,
        seed=args.seed,
        corpus=args.corpus,
        corpus_size=args.corpus_size,
        method=args.method,
    )
    work = args.work_dir or default_work_dir()
    run_dir = work / f"run-{int(time.time())}"

    def log(msg: str) -> None:
        print(f"[private-mc] {msg}", file=sys.stderr, flush=True)

    with running_pair(cfg.provider_embedder, cfg.client_embedder, run_dir) as pair:
        log(f"daemons up under {run_dir}")
        caches = None if args.no_seed_caches else pair.embedding_caches
        result = run_private_mc(cfg, pair.admin, pair.agent, cache_dir=work, daemon_caches=caches, log=log)
    result["command"] = " ".join(["helix-generate", *(args.argv or [])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    summary = {k: result[k] for k in ("accuracy", "encrypted_equals_plaintext", "max_abs_score_difference")}
    print(json.dumps({"out": str(args.out), **summary, "latency": result["latency_per_question"]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .decode import DEFAULT_MAX_NEW_TOKENS
    from .fit import DEFAULT_METHOD

    p = argparse.ArgumentParser(prog="helix-generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 on a shared machine)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tokenizers", help="tokenizer compatibility metrics of two models")
    t.add_argument("a")
    t.add_argument("b")
    t.add_argument("--texts", type=int, default=200, help="Alpaca test texts to measure on")
    t.set_defaults(func=cmd_tokenizers)

    f = sub.add_parser("fit", help="fit a token-level map SOURCE -> TARGET")
    f.add_argument("source")
    f.add_argument("target")
    f.add_argument("--out", type=Path, required=True, help="map file (.npz)")
    f.add_argument("--train-texts", type=int, default=4000)
    f.add_argument("--max-tokens", type=int, default=128, help="tokens kept per training text")
    f.add_argument("--method", default=DEFAULT_METHOD, help="map method of helix_alignment.methods")
    f.add_argument("--shuffled", action="store_true", help="control: pair states of different texts")
    f.set_defaults(func=cmd_fit)

    g = sub.add_parser("generate", help="stitched greedy decoding from a prompt")
    g.add_argument("source")
    g.add_argument("target")
    g.add_argument("--prompt", required=True)
    g.add_argument("--map", type=Path, default=None)
    g.add_argument("--identity", action="store_true", help="exact identity map (SOURCE must equal TARGET)")
    g.add_argument("--native", action="store_true", help="the target decoding on its own")
    g.add_argument("--mode", choices=("text", "tokens"), default="text")
    g.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    g.add_argument("--no-cache", action="store_true", help="re-run the source on the whole text each step (timing)")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("eval", help="full experiment for a pair (JSON out)")
    e.add_argument("a")
    e.add_argument("b")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--maps-dir", type=Path, default=None, help="also save the fitted maps here")
    e.add_argument("--train-texts", type=int, default=4000)
    e.add_argument("--max-tokens", type=int, default=128)
    e.add_argument("--method", default=DEFAULT_METHOD)
    e.add_argument("--heldout-texts", type=int, default=50)
    e.add_argument("--mmlu-questions", type=int, default=100)
    e.add_argument("--mmlu-shots", type=int, default=0)
    e.add_argument("--mmlu-new-tokens", type=int, default=32)
    e.add_argument("--alpaca-prompts", type=int, default=100)
    e.add_argument("--alpaca-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    e.add_argument("--embedder", default="minilm", help="embedder spec for output similarity")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-controls", action="store_true", help="skip identity and shuffled controls")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="markdown tables (and a plot) from eval result files")
    r.add_argument("results", type=Path, nargs="+")
    r.add_argument("--plot", type=Path, default=None, help="write the figure here (.png)")
    r.set_defaults(func=cmd_report)

    m = sub.add_parser("private-mc", help="MMLU through a provider LLM's answer head, encrypted, real daemons")
    m.add_argument("provider", help="causal LM whose answer-letter head the provider publishes")
    m.add_argument("client", help="causal LM the client embeds questions with")
    m.add_argument("--out", type=Path, required=True, help="result file (.json)")
    m.add_argument("--questions", type=int, default=100, help="MMLU test questions (drawn with --seed)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--corpus", choices=("mmlu", "alpaca"), default="mmlu", help="public alignment prompts")
    m.add_argument("--corpus-size", type=int, default=2000)
    m.add_argument("--method", default="ridge_scaled", help=METHOD_HELP)
    m.add_argument("--work-dir", type=Path, default=None, help="daemon data and embedding cache")
    m.add_argument("--no-seed-caches", action="store_true", help="let the daemons embed the corpus themselves (slower)")
    m.set_defaults(func=cmd_private_mc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command == "generate" and args.identity and args.source != args.target:
        print("--identity needs SOURCE == TARGET", file=sys.stderr)
        return 2
    _threads(args.threads)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
