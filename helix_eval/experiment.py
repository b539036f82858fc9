"""One experiment: a target (provider) model, a source (client) model, one labelled dataset.

Everything that decides a number is recorded in the result: model ids, sample sizes, seeds,
text truncation, head recipe, each map method's parameters and what it chose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helix_alignment.methods import CLIENT_DEFAULT_METHOD, KAPPA_GRID, METHODS, fold_stats, solve_method, stats_of

from . import retention
from .data import SampleSpec, load_labelled, load_mix_texts, load_public
from .embedding import Embeddings
from .folded import folded_report
from .ood import ood_report
from .similarity import similarity_report

DEFAULT_METHODS = (
    "ridge",
    "ridge_scaled",
    "ridge_cv",
    "procrustes",
    "anchored_ridge",
    "anchored_ridge_cv",
    "whitened_procrustes",
    "reduced_rank",
    "cca",
)
PAPER_METHOD = "ridge"
#: Methods also run in the public + k setting (9 fits per method: kept to the ones compared there).
FEW_SHOT_METHODS = ("ridge", "ridge_scaled", "ridge_cv", "anchored_ridge_cv")


@dataclass(frozen=True)
class ExperimentConfig:
    target: str
    source: str
    dataset: Path
    public: Path
    ood: Path | None = None
    sample: SampleSpec = field(default_factory=SampleSpec)
    methods: tuple[str, ...] = DEFAULT_METHODS
    few_shot_sizes: tuple[int, ...] = (32, 64, 128)
    few_shot_seeds: tuple[int, ...] = (0, 1, 2)
    few_shot_methods: tuple[str, ...] = FEW_SHOT_METHODS
    corpus_sizes: tuple[int, ...] = ()
    public_mix: tuple[str, ...] = ()
    cv_folds: int = 5
    svcca_dims: tuple[int, ...] = (64, 128)
    #: None: each head's C by cross-validation on its own training data; a number fixes C for every head.
    head_c: float | None = None
    #: OOD test-sample size (independent of the in-distribution test size).
    ood_size: int = 500

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "dataset": str(self.dataset),
            "public": str(self.public),
            "ood": str(self.ood) if self.ood else None,
            "ood_size": self.ood_size,
            "sample": self.sample.as_dict(),
            "methods": list(self.methods),
            "method_params": {m: _jsonable(METHODS[m].params) for m in self.methods},
            "few_shot_sizes": list(self.few_shot_sizes),
            "few_shot_seeds": list(self.few_shot_seeds),
            "few_shot_methods": list(self.few_shot_methods),
            "corpus_sizes": list(self.corpus_sizes),
            "public_mix": list(self.public_mix),
            "cv_folds": self.cv_folds,
            "svcca_dims": list(self.svcca_dims),
            "kappa_grid": list(KAPPA_GRID),
            "head": retention.head_recipe(self.head_c),
        }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _fit(method: str, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[Any, dict[str, Any]]:
    needs = METHODS[method].needs
    kwargs: dict[str, Any] = {}
    if "fold_xty" in needs:
        kwargs["folds"] = fold_stats(x, y, folds, seed)
    if "yty" in needs:
        kwargs["yty"] = y.T @ y
    m, info = solve_method(method, stats_of(x, y), **kwargs)
    return m, {k: v for k, v in info.items() if k not in ("grid", "cv_losses")}


def _silent(_: str) -> None:
    return None


def _mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.divide(np.sum(a * b, axis=1), den, out=np.zeros(len(a)), where=den > 0)))


def run_experiment(cfg: ExperimentConfig, emb: Embeddings, log: Callable[[str], None] = _silent) -> dict[str, Any]:
    """Run similarity, retention (in-distribution, public-only, public + k) and OOD for one pair.

    ``log`` receives one line per finished stage (progress on a long run)."""
    t0 = time.perf_counter()
    s = cfg.sample
    data = load_labelled(cfg.dataset, s)
    public = load_public(cfg.public, s, size=max((s.public_size, *cfg.corpus_sizes)))
    mix: list[str] = []
    for item in cfg.public_mix:
        mix += load_mix_texts(item, s, cfg.public, exclude=Path(cfg.dataset).resolve().name)
    y_tr, x_tr = emb.embed(cfg.target, data.train.texts), emb.embed(cfg.source, data.train.texts)
    y_te, x_te = emb.embed(cfg.target, data.test.texts), emb.embed(cfg.source, data.test.texts)
    y_pub_all, x_pub_all = emb.embed(cfg.target, public), emb.embed(cfg.source, public)
    y_pub, x_pub = y_pub_all[: s.public_size], x_pub_all[: s.public_size]
    if mix:
        y_pub = np.vstack([y_pub, emb.embed(cfg.target, mix)])
        x_pub = np.vstack([x_pub, emb.embed(cfg.source, mix)])
    lab_tr, lab_te = np.asarray(data.train.labels), np.asarray(data.test.labels)
    log(f"embedded ({time.perf_counter() - t0:.0f} s)")

    head = retention.train_head(y_tr, lab_tr, c=cfg.head_c, seed=s.seed)
    own_head = retention.train_head(x_tr, lab_tr, c=cfg.head_c, seed=s.seed)
    base_acc = head.accuracy(y_te, lab_te)
    log(f"heads (C={head.c:g}, client own C={own_head.c:g}): baseline {base_acc:.3f}")
    result: dict[str, Any] = {
        "config": cfg.as_dict(),
        "dataset": data.name,
        "split_note": data.split_note,
        "cut_rows": data.cut_rows,
        "target_model_id": emb.model_id(cfg.target),
        "source_model_id": emb.model_id(cfg.source),
        "dims": {"target": int(y_tr.shape[1]), "source": int(x_tr.shape[1])},
        "sizes": {
            "train": len(lab_tr),
            "test": len(lab_te),
            "public": int(x_pub.shape[0]),
            "public_mix": len(mix),
            "classes": len(data.train.class_names),
        },
        "similarity": similarity_report(x_tr, y_tr, x_te, y_te, cfg.svcca_dims, s.seed),
        "baseline_accuracy": base_acc,
        "source_own_accuracy": own_head.accuracy(x_te, lab_te),
        "heads": {"baseline": head.describe(), "source_own": own_head.describe()},
    }

    def evaluate(x_fit: np.ndarray, y_fit: np.ndarray, method: str, seed: int = 0) -> tuple[dict[str, Any], Any]:
        m, info = _fit(method, x_fit, y_fit, cfg.cv_folds, seed)
        mapped = m.apply(x_te)
        acc = head.accuracy(mapped, lab_te)
        return {
            "accuracy": acc,
            "retention": acc / base_acc if base_acc else 0.0,
            "test_cosine": _mean_cos(mapped, y_te),
            "chosen": info,
        }, m

    settings: dict[str, dict[str, Any]] = {"in_distribution": {}, "public": {}, "train_plus_public": {}}
    maps: dict[tuple[str, str], Any] = {}
    for method in cfg.methods:
        settings["in_distribution"][method], maps[("in_distribution", method)] = evaluate(x_tr, y_tr, method)
        settings["public"][method], maps[("public", method)] = evaluate(x_pub, y_pub, method)
        settings["train_plus_public"][method] = evaluate(np.vstack([x_tr, x_pub]), np.vstack([y_tr, y_pub]), method)[0]
        log(f"{method}: public {settings['public'][method]['accuracy']:.3f}")
    if ("public", CLIENT_DEFAULT_METHOD) in maps:
        result["provider_held"] = folded_report(head, maps[("public", CLIENT_DEFAULT_METHOD)], x_te, lab_te)
        result["provider_held"]["method"] = CLIENT_DEFAULT_METHOD
    few: dict[str, Any] = {}
    for k in cfg.few_shot_sizes:
        fs_methods = [m for m in cfg.methods if m in cfg.few_shot_methods]
        per_method: dict[str, list[float]] = {m: [] for m in fs_methods}
        own: list[float] = []
        own_c: list[float] = []
        for seed in cfg.few_shot_seeds:
            idx = retention.stratified_sample(lab_tr, k, seed)
            xf, yf = np.vstack([x_pub, x_tr[idx]]), np.vstack([y_pub, y_tr[idx]])
            for method in fs_methods:
                per_method[method].append(evaluate(xf, yf, method, seed)[0]["accuracy"])
            few_head = retention.train_head(x_tr[idx], lab_tr[idx], c=cfg.head_c, seed=seed)
            own.append(few_head.accuracy(x_te, lab_te))
            own_c.append(few_head.c)
        few[str(k)] = {
            "few_shot_own_head": float(np.mean(own)),
            "few_shot_own_head_runs": own,
            "few_shot_own_head_c": own_c,
            **{
                m: {"accuracy": float(np.mean(v)), "retention": float(np.mean(v)) / base_acc, "runs": v}
                for m, v in per_method.items()
            },
        }
        log(f"public + {k}: few-shot head {np.mean(own):.3f}")
    settings["public_plus_k"] = few
    if cfg.corpus_sizes:
        sizes: dict[str, Any] = {}
        for n in cfg.corpus_sizes:
            sizes[str(n)] = {
                m: evaluate(x_pub_all[:n], y_pub_all[:n], m)[0]
                for m in cfg.methods
                if m in ("ridge", "ridge_scaled", "ridge_cv", "anchored_ridge_cv")
            }
        settings["public_corpus_size"] = sizes
    result["settings"] = settings

    if cfg.ood is not None:
        ood_data = load_labelled(cfg.ood, s, test_size=cfg.ood_size)
        y_ood, x_ood = emb.embed(cfg.target, ood_data.test.texts), emb.embed(cfg.source, ood_data.test.texts)
        ood: dict[str, Any] = {
            "ood_dataset": ood_data.name,
            "ood_size": len(ood_data.test.texts),
            "baseline": ood_report(head.logits(y_te), head.logits(y_ood)),
        }
        for (setting, method), m in maps.items():
            ood.setdefault(setting, {})[method] = ood_report(head.logits(m.apply(x_te)), head.logits(m.apply(x_ood)))
        result["ood"] = ood
    result["seconds"] = time.perf_counter() - t0
    return result
