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
    emb = Embeddings(args.cache_dir, progress=not args.quiet)
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


def parse_ood(items: list[str] | None) -> tuple[Path | None, dict[str, Path]]:
    """``--ood`` items: ``FOLDER`` (for every dataset) or ``NAME=FOLDER`` (for the dataset folder named NAME)."""
    every: Path | None = None
    per: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if sep:
            per[name] = Path(path)
        else:
            every = Path(item)
    return every, per


def choose_ood(folder: Path, every: Path | None, per: dict[str, Path]) -> tuple[Path | None, str]:
    """The OOD folder for one dataset and a sentence saying where it came from (or why there is none)."""
    if folder.name in per:
        return per[folder.name], f"--ood {folder.name}=..."
    if every is not None:
        return every, "--ood"
    if folder.name in DEFAULT_OOD:
        default = folder.parent / DEFAULT_OOD[folder.name]
        if (default / "test.jsonl").exists():
            return default, f"built-in pairing {folder.name} -> {DEFAULT_OOD[folder.name]}"
        return None, f"no OOD run: the built-in OOD set {default} does not exist; pass --ood {folder.name}=FOLDER"
    return None, f"no OOD run: {folder.name} has no built-in OOD set; pass --ood {folder.name}=FOLDER"


def default_out() -> Path:
    """A fresh folder per run (never the committed docs/results)."""
    return Path(".helix/eval-runs") / time.strftime("run-%Y%m%d-%H%M%S")


def _safe(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every (pair, dataset) experiment and write one JSON file each."""
    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir, progress=not args.quiet)
    preset = SETTINGS[args.setting]
    methods = tuple(args.methods) if args.methods else preset["methods"]
    out: Path = args.out if args.out is not None else default_out()
    out.mkdir(parents=True, exist_ok=True)
    every, per = parse_ood(args.ood)
    unknown = sorted(set(per) - {Path(f).name for f in args.datasets})
    if unknown:
        print(f"error: --ood names {unknown} match no --datasets folder", file=sys.stderr)
        return 2
    quiet: bool = args.quiet

    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    say(f"results -> {out} (rerun with --out {out} to resume: finished results are kept)")
    for target, source in args.pair:
        for folder in args.datasets:
            folder = Path(folder)
            ood, ood_note = choose_ood(folder, every, per)
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
                head_c=args.head_c,
                ood_size=args.ood_size,
            )
            name = f"{_safe(target)}__{_safe(source)}__{folder.resolve().name}{args.tag}.json"
            path = out / name
            if path.exists() and not args.force and _same_config(path, cfg):
                say(f"{target} <- {source} {folder.name}: kept {path} (finished earlier; --force reruns)")
                continue
            if ood is None:
                print(f"note: {folder.name}: {ood_note}", file=sys.stderr, flush=True)

            def log(line: str, prefix: str = f"{target} <- {source} {folder.name}") -> None:
                say(f"  [{prefix}] {line}")

            result = run_experiment(cfg, emb, log)
            result["setting"] = args.setting
            result["ood_note"] = ood_note
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(result, separators=(",", ":")))  # compact: results are committed
            tmp.replace(path)  # a result file is complete or absent, never half-written
            pub = result["settings"]["public"]
            best = max(pub, key=lambda m: pub[m]["accuracy"])
            print(
                f"{target} <- {source} {result['dataset']}: baseline {result['baseline_accuracy']:.3f}, "
                f"public ridge {pub.get('ridge', {}).get('accuracy', float('nan')):.3f}, best {best} "
                f"{pub[best]['accuracy']:.3f} ({result['seconds']:.0f} s) -> {path}",
                flush=True,
            )
    return 0


def _same_config(path: Path, cfg: ExperimentConfig) -> bool:
    """Whether a finished result file was made with this configuration (then a resumed run keeps it)."""
    try:
        return bool(json.loads(path.read_text()).get("config") == json.loads(json.dumps(cfg.as_dict())))
    except (OSError, ValueError):
        return False


def cmd_report(args: argparse.Namespace) -> int:
    """Tables and plots from result JSON files."""
    from .report import write_report

    write_report(args.results, args.out if args.out is not None else args.results)
    return 0


def cmd_membership(args: argparse.Namespace) -> int:
    """Membership-inference audit of the map (paper Appendix J) over a grid of k and corpus sizes."""
    from .membership import PAPER_ATTACK, AuditConfig, audit

    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir, progress=not args.quiet)
    target, source = args.pair
    data = load_labelled(Path(args.dataset), spec)
    public = load_public(args.public, spec, size=max(args.corpus_sizes))
    y_pub_all, x_pub_all = emb.embed(target, public), emb.embed(source, public)
    y_pool, x_pool = emb.embed(target, data.train.texts), emb.embed(source, data.train.texts)
    cells = []
    for n in args.corpus_sizes:
        for k in args.k:
            t0 = time.perf_counter()
            cfg = AuditConfig(k=k, shadows=args.shadows, targets=args.targets, method=args.method, seed=args.seed)
            cell = audit(x_pub_all[:n], y_pub_all[:n], x_pool, y_pool, cfg)
            cell["seconds"] = time.perf_counter() - t0
            cells.append(cell)
            g, r = cell["geometric_auc"], cell["residual_auc"]
            print(
                f"public {n:>5} + k {k:>4}: geometric AUC {g['mean']:.3f} +- {g['sd']:.3f}"
                f"{' (chance)' if cell['geometric_at_chance'] else ''}, residual AUC {r['mean']:.3f} +- {r['sd']:.3f}"
                f"{' (chance)' if cell['residual_at_chance'] else ''} ({cell['seconds']:.0f} s)",
                flush=True,
            )
    result = {
        "target": target,
        "source": source,
        "target_model_id": emb.model_id(target),
        "source_model_id": emb.model_id(source),
        "dataset": data.name,
        "sample": spec.as_dict(),
        "paper": {"mean": PAPER_ATTACK[0], "sd": PAPER_ATTACK[1], "setup": "100k public + 128, 100 IN / 100 OUT"},
        "cells": cells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


def cmd_glue(args: argparse.Namespace) -> int:
    """GLUE-style end-to-end table: accuracy and latency with the client's embedding time included."""
    from .glue import end_to_end

    spec = _sample_spec(args)
    emb = Embeddings(args.cache_dir, progress=not args.quiet)
    rows = []
    for target, source in args.pair:
        for folder in args.datasets:
            row = end_to_end(
                target,
                source,
                Path(folder),
                args.public,
                spec,
                emb,
                k=args.k,
                encrypted_examples=args.encrypted_examples,
                latency_queries=args.latency_queries,
                head_c=args.head_c,
            )
            rows.append(row)
            lat = row["latency_ms"]
            print(
                f"{target} <- {source} {row['dataset']}: native {row['provider_native_accuracy']:.3f}, "
                f"mapped {row['plaintext_mapped_accuracy']:.3f}, encrypted client-held / provider-held "
                f"{row['accuracy_on_encrypted_examples']['client_held']:.3f} / "
                f"{row['accuracy_on_encrypted_examples']['provider_held']:.3f}; p50 total "
                f"{lat['client_held']['total']['p50']:.1f} / {lat['provider_held']['total']['p50']:.1f} ms "
                f"(embed {lat['client_held']['embed']['p50']:.1f} ms)",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"-> {args.out}")
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
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
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
    p.add_argument(
        "--ood",
        nargs="*",
        default=None,
        metavar="[NAME=]FOLDER",
        help="OOD dataset folder for every dataset, or NAME=FOLDER for the dataset folder NAME (repeatable); "
        f"default: a built-in pairing for {sorted(DEFAULT_OOD)}, none (with a note) for other datasets",
    )
    p.add_argument("--ood-size", type=int, default=500, help="OOD test examples (independent of --test-size)")
    p.add_argument(
        "--head-c",
        type=float,
        default=None,
        help="fix every head's C (default: C by 5-fold cross-validation on each head's own training data)",
    )
    p.add_argument("--setting", choices=sorted(SETTINGS), default="full")
    p.add_argument(
        "--methods", nargs="*", default=None, help=f"map methods (default per setting; known: {sorted(METHODS)})"
    )
    p.add_argument(
        "--corpus-sizes", nargs="*", type=int, default=[], help="also fit public-only maps on these corpus sizes"
    )
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result folder (default: a fresh .helix/eval-runs/run-<time>); rerun with the same --out to resume",
    )
    p.add_argument("--force", action="store_true", help="rerun experiments whose result file already exists")
    p.add_argument("--tag", default="", help="suffix for the result file names")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    _add_sample_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("membership", help="membership-inference audit of the map (paper Appendix J)")
    p.add_argument("--pair", nargs=2, required=True, metavar=("TARGET", "SOURCE"))
    p.add_argument("--dataset", required=True, help="labelled dataset folder: its train sample is the pool of targets")
    p.add_argument("--public", type=Path, default=_datasets_root() / "wikipedia", help="public corpus folder or jsonl")
    p.add_argument("--k", nargs="+", type=int, default=[32, 128], help="in-distribution rows per map")
    p.add_argument("--corpus-sizes", nargs="+", type=int, default=[1000, 4000], help="public corpus sizes")
    p.add_argument("--shadows", type=int, default=100, help="shadow maps per side (IN and OUT) per target")
    p.add_argument("--targets", type=int, default=5, help="targets audited per cell")
    p.add_argument("--method", choices=("ridge_scaled", "ridge"), default="ridge_scaled")
    p.add_argument("--out", type=Path, default=Path(".helix/eval-runs/membership.json"))
    p.add_argument("--quiet", action="store_true")
    _add_sample_args(p)
    p.set_defaults(func=cmd_membership)

    p = sub.add_parser("glue", help="GLUE-style end-to-end accuracy and latency (paper Table 3)")
    p.add_argument("--pair", nargs=2, action="append", required=True, metavar=("TARGET", "SOURCE"))
    p.add_argument("--datasets", nargs="+", required=True, help="labelled dataset folders (pair datasets welcome)")
    p.add_argument("--public", type=Path, default=_datasets_root() / "wikipedia", help="public corpus folder or jsonl")
    p.add_argument("--k", type=int, default=128, help="in-distribution texts added to the public corpus for the map")
    p.add_argument("--encrypted-examples", type=int, default=200, help="test examples classified under encryption")
    p.add_argument("--latency-queries", type=int, default=20, help="single-text queries timed end to end")
    p.add_argument("--head-c", type=float, default=None, help="fix the head's C (default: cross-validated)")
    p.add_argument("--out", type=Path, default=Path(".helix/eval-runs/glue.json"))
    p.add_argument("--quiet", action="store_true")
    _add_sample_args(p)
    p.set_defaults(func=cmd_glue)

    p = sub.add_parser("matrix", help="CKA between all model pairs (heatmap data)")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--out", type=Path, default=Path("docs/results/cka_matrix.json"))
    _add_sample_args(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("report", help="markdown tables and plots from result JSON")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("docs/results"),
        help="a `helix-eval run --out` folder, or a folder with runs/ (and runs-mix/, bounds/, ...) inside",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="where tables.md, summary.json and plots go (default: --results)"
    )
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
