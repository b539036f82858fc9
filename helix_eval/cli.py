"""``helix-eval``: measure how well a linear map carries a provider's heads to a client's embeddings.

Subcommands: ``embed`` (fill the embedding cache for models x datasets, e.g. in the background),
``run`` (one target/source pair on one dataset, JSON out), ``report`` (tables and plots from
result JSON files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TypedDict

from helix_alignment.methods import METHODS

from .data import SampleSpec, load_labelled, load_mix_texts, load_public
from .embedding import Embeddings
from .experiment import DEFAULT_METHODS, ExperimentConfig, run_experiment


def _datasets_root() -> Path:
    return Path(os.environ.get("HELIX_DATASETS", "../shared/datasets"))


def _add_sample_args(p: argparse.ArgumentParser) -> None:
    d = SampleSpec()
    p.add_argument("--train-size", type=int, default=d.train_size, help="train examples per dataset (subsample)")
    p.add_argument("--test-size", type=int, default=d.test_size, help="test examples per dataset (subsample)")
    p.add_argument("--public-size", type=int, default=d.public_size, help="public corpus passages")
    p.add_argument("--max-chars", type=int, default=d.max_chars, help="texts are cut to this many characters")
    p.add_argument("--seed", type=int, default=d.seed, help="subsampling seed")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="embedding cache (default $HELIX_EVAL_CACHE or .helix/eval-cache)"
    )


def _sample_spec(args: argparse.Namespace) -> SampleSpec:
    return SampleSpec(
        train_size=args.train_size,
        test_size=args.test_size,
        public_size=args.public_size,
        max_chars=args.max_chars,
        seed=args.seed,
    )


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed the public corpus and each dataset's train/test sample with each model (cache fill)."""
    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir, progress=args.progress)
    sets: list[tuple[str, list[str]]] = [("public", load_public(args.public, spec))]
    for mix in args.public_mix:
        sets.append((f"mix:{mix}", load_mix_texts(mix, spec, args.public)))
    for folder in args.datasets:
        data = load_labelled(Path(folder), spec)
        sets += [(f"{data.name}/train", data.train.texts), (f"{data.name}/test", data.test.texts)]
    for model in args.models:
        for name, texts in sets:
            t0 = time.perf_counter()
            for start in range(0, len(texts), 250):  # the cache stores per call: an interrupted fill keeps its progress
                emb.embed(model, texts[start : start + 250])
            print(f"{model} {name}: {len(texts)} texts in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


#: OOD dataset used for a known in-distribution dataset when --ood is not given (a different task
#: and text style: topic news vs sentiment, questions vs reviews, single sentences vs pairs).
DEFAULT_OOD = {"sst2": "ag_news", "imdb": "ag_news", "ag_news": "sst2", "trec": "sst2", "mrpc": "sst2", "mnli": "trec"}


class Setting(TypedDict):
    """The experiment grid that one --setting name stands for."""

    methods: tuple[str, ...]
    few_shot_sizes: tuple[int, ...]
    few_shot_seeds: tuple[int, ...]


#: What each --setting runs.
SETTINGS: dict[str, Setting] = {
    "full": {"methods": DEFAULT_METHODS, "few_shot_sizes": (32, 64, 128), "few_shot_seeds": (0, 1, 2)},
    "paper": {"methods": ("ridge",), "few_shot_sizes": (32, 64, 128), "few_shot_seeds": (0, 1, 2)},
    "quick": {"methods": ("ridge", "ridge_scaled"), "few_shot_sizes": (32,), "few_shot_seeds": (0,)},
    "mix": {
        "methods": (
            "ridge",
            "ridge_scaled",
            "ridge_cv",
            "procrustes",
            "anchored_ridge",
            "anchored_ridge_cv",
            "whitened_procrustes",
        ),
        "few_shot_sizes": (),
        "few_shot_seeds": (),
    },
}


def _safe(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every (pair, dataset) experiment and write one JSON file each."""
    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir, progress=args.progress)
    preset = SETTINGS[args.setting]
    methods = tuple(args.methods) if args.methods else preset["methods"]
    args.out.mkdir(parents=True, exist_ok=True)
    for target, source in args.pair:
        for folder in args.datasets:
            folder = Path(folder)
            ood = (
                args.ood
                if args.ood is not None
                else (folder.parent / DEFAULT_OOD[folder.name] if folder.name in DEFAULT_OOD else None)
            )
            cfg = ExperimentConfig(
                target=target,
                source=source,
                dataset=folder,
                public=args.public,
                ood=ood,
                sample=spec,
                methods=methods,
                few_shot_sizes=preset["few_shot_sizes"],
                few_shot_seeds=preset["few_shot_seeds"],
                corpus_sizes=tuple(args.corpus_sizes),
                public_mix=tuple(args.public_mix),
                cv_folds=args.cv_folds,
            )
            result = run_experiment(cfg, emb)
            result["setting"] = args.setting
            name = f"{_safe(target)}__{_safe(source)}__{result['dataset']}{args.tag}.json"
            (args.out / name).write_text(json.dumps(result, separators=(",", ":")))  # compact: results are committed
            pub = result["settings"]["public"]
            best = max(pub, key=lambda m: pub[m]["accuracy"])
            print(
                f"{target} <- {source} {result['dataset']}: baseline {result['baseline_accuracy']:.3f}, "
                f"public ridge {pub.get('ridge', {}).get('accuracy', float('nan')):.3f}, best {best} "
                f"{pub[best]['accuracy']:.3f} ({result['seconds']:.0f} s) -> {args.out / name}",
                flush=True,
            )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Tables and plots from result JSON files."""
    from .report import write_report

    write_report(args.results, args.out)
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    """CKA between every pair of models on one dataset's test texts (for the heatmap)."""
    from .similarity import linear_cka

    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir)
    mats: dict[str, list[list[float]]] = {}
    for folder in args.datasets:
        data = load_labelled(Path(folder), spec)
        vecs = [emb.embed(m, data.test.texts) for m in args.models]
        mats[data.name] = [[linear_cka(a, b) for b in vecs] for a in vecs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"models": args.models, "sample": spec.as_dict(), "cka": mats}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helix-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("embed", help="fill the embedding cache")
    p.add_argument("--models", nargs="+", required=True, help="embedder specs (minilm, e5, mpnet, ...)")
    p.add_argument("--datasets", nargs="*", default=[], help="labelled dataset folders")
    p.add_argument("--public", type=Path, default=_datasets_root() / "wikipedia", help="public corpus folder or jsonl")
    p.add_argument(
        "--public-mix",
        nargs="*",
        default=[],
        help="questions[:COUNT] or FOLDER[:COUNT]: extra public texts for the alignment corpus",
    )
    p.add_argument("--progress", action="store_true")
    _add_sample_args(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("run", help="run experiments, one JSON per (target, source, dataset)")
    p.add_argument(
        "--pair",
        nargs=2,
        action="append",
        required=True,
        metavar=("TARGET", "SOURCE"),
        help="provider (target) and client (source) embedder specs; repeatable",
    )
    p.add_argument("--datasets", nargs="+", required=True, help="labelled dataset folders")
    p.add_argument("--public", type=Path, default=_datasets_root() / "wikipedia", help="public corpus folder or jsonl")
    p.add_argument(
        "--public-mix",
        nargs="*",
        default=[],
        help="questions[:COUNT] or FOLDER[:COUNT]: extra public texts for the alignment corpus",
    )
    p.add_argument("--ood", type=Path, default=None, help="OOD dataset folder (default: a fixed other dataset)")
    p.add_argument("--setting", choices=sorted(SETTINGS), default="full")
    p.add_argument(
        "--methods", nargs="*", default=None, help=f"map methods (default per setting; known: {sorted(METHODS)})"
    )
    p.add_argument(
        "--corpus-sizes", nargs="*", type=int, default=[], help="also fit public-only maps on these corpus sizes"
    )
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("docs/results/runs"))
    p.add_argument("--tag", default="", help="suffix for the result file names")
    p.add_argument("--progress", action="store_true")
    _add_sample_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("matrix", help="CKA between all model pairs (heatmap data)")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--out", type=Path, default=Path("docs/results/cka_matrix.json"))
    _add_sample_args(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("report", help="markdown tables and plots from result JSON")
    p.add_argument("--results", type=Path, default=Path("docs/results"))
    p.add_argument("--out", type=Path, default=Path("docs/results"))
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point. BLAS runs single-threaded unless ``HELIX_EVAL_BLAS_THREADS`` says otherwise: the
    matrices are small (d <= 1024), and on a shared machine threaded BLAS mostly spins."""
    from threadpoolctl import threadpool_limits

    args = build_parser().parse_args(argv)
    with threadpool_limits(limits=int(os.environ.get("HELIX_EVAL_BLAS_THREADS", "1")), user_api="blas"):
        return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
