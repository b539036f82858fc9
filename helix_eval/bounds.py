r"""How much a map can retain at most: the client's best linear probe on the same task.

Why: a map followed by the provider's frozen linear head is one linear classifier on the client's
embedding. So the mapped accuracy can exceed the best linear classifier the client's own
embedding supports only by chance. This module fits that classifier on the train split of each
finished run (logistic regression on standardised embeddings, C chosen by 5-fold cross-validation
on the train split, never the test split), for the client and, as a reference, the provider, and
reports the gap a map would have to close: ``baseline - client probe``. When that gap exceeds a
target (e.g. 1.5 points) the target is out of reach for any map on that client embedding.

    python -m helix_eval.bounds docs/results/runs-train5000 --cache-dir .helix/eval-cache-big
    python -m helix_eval.bounds docs/results/runs --pattern 'minilm__smollm2__*' \
        --out docs/results/bounds/runs-smollm2.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .data import SampleSpec, load_labelled
from .embedding import Embeddings
from .report import pair_name

C_GRID = tuple(float(c) for c in np.logspace(-5, 2, 8))


def best_probe_accuracy(
    x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """Test accuracy of a CV-tuned (train split only) logistic probe, and the C it chose."""
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=list(C_GRID), cv=5, max_iter=3000, random_state=seed, scoring="accuracy"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notices about LogisticRegressionCV attributes
        probe.fit(x_tr, y_tr)
    return float(np.mean(probe.predict(x_te) == y_te)), float(probe[-1].C_[0])


def bound_for_run(run: dict[str, Any], emb: Embeddings) -> dict[str, Any]:
    cfg = run["config"]
    spec = SampleSpec(**cfg["sample"])
    data = load_labelled(Path(cfg["dataset"]), spec)
    lab_tr, lab_te = np.asarray(data.train.labels), np.asarray(data.test.labels)
    out: dict[str, Any] = {
        "pair": pair_name(run),
        "target": cfg["target"],
        "source": cfg["source"],
        "dataset": run["dataset"],
        "train": len(lab_tr),
        "test": len(lab_te),
        "baseline_accuracy": run["baseline_accuracy"],
        "c_grid": list(C_GRID),
    }
    for side in ("source", "target"):
        x_tr = emb.embed(cfg[side], data.train.texts)
        x_te = emb.embed(cfg[side], data.test.texts)
        acc, c = best_probe_accuracy(x_tr, lab_tr, x_te, lab_te, spec.seed)
        out[f"{side}_probe_accuracy"], out[f"{side}_probe_c"] = acc, c
    ind = run["settings"]["in_distribution"]
    out["in_distribution_accuracy"] = {m: v["accuracy"] for m, v in ind.items()}
    out["reachable_gap"] = out["baseline_accuracy"] - out["source_probe_accuracy"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helix_eval.bounds", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="folder of run JSON files (helix-eval run --out)")
    ap.add_argument("--pattern", default="*.json")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="default: docs/results/bounds/<runs folder name>.json")
    args = ap.parse_args(argv)
    emb = Embeddings(args.cache_dir)
    rows = []
    for path in sorted(args.runs.glob(args.pattern)):
        row = bound_for_run(json.loads(path.read_text()), emb)
        rows.append(row)
        print(
            f"{row['pair']} {row['dataset']}: baseline {row['baseline_accuracy']:.3f}, client probe "
            f"{row['source_probe_accuracy']:.3f} (C={row['source_probe_c']:g}), "
            f"provider probe {row['target_probe_accuracy']:.3f}, "
            f"gap a map cannot close {row['reachable_gap']:+.3f}",
            flush=True,
        )
    out = args.out or Path("docs/results/bounds") / f"{args.runs.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
