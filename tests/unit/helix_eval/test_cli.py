"""Smoke test of ``helix-eval`` end to end on a tiny synthetic dataset folder, with static models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helix_eval.cli import main

pytest.importorskip("wordllama")

TOPICS = {
    0: ["football", "goal", "team", "match", "coach", "league", "striker", "season"],
    1: ["pasta", "recipe", "oven", "sauce", "garlic", "bread", "butter", "dinner"],
}
QUESTIONS = ["Who scored the goal", "What is in the sauce", "Where is the match", "How many eggs are needed"]


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"text": " ".join(rng.choice(TOPICS[lab]) for _ in range(6)), "label": lab} for lab in (i % 2 for i in range(n))
    ]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    _write(root / "tiny", "train.jsonl", _rows(80, 0))
    _write(root / "tiny", "test.jsonl", _rows(40, 1))
    (root / "tiny" / "labels.json").write_text(json.dumps(["sport", "food"]))
    rng = random.Random(2)
    _write(root / "qs", "test.jsonl", [{"text": f"{rng.choice(QUESTIONS)} {i}?", "label": i % 2} for i in range(60)])
    words = [w for ws in TOPICS.values() for w in ws] + ["city", "river", "history", "music", "science", "war"]
    _write(
        root / "wiki",
        "passages.jsonl",
        [{"text": " ".join(rng.choice(words) for _ in range(10)) + ".", "source": "t"} for _ in range(150)],
    )
    return root


def test_run_and_report_write_results(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    common = ["--train-size", "60", "--test-size", "30", "--public-size", "120", "--cache-dir", str(tmp_path / "cache")]
    assert (
        main(
            [
                "run",
                "--pair",
                "wordllama",
                "glove",
                "--datasets",
                str(tree / "tiny"),
                "--public",
                str(tree / "wiki"),
                "--ood",
                str(tree / "qs"),
                "--setting",
                "quick",
                "--methods",
                "ridge",
                "ridge_scaled",
                "ridge_cv",
                "cca",
                "--public-mix",
                "questions:20",
                str(tree / "qs") + ":10",
                "--corpus-sizes",
                "60",
                "--out",
                str(out / "runs"),
                *common,
            ]
        )
        == 0
    )
    files = list((out / "runs").glob("*.json"))
    assert len(files) == 1
    r = json.loads(files[0].read_text())
    assert r["sizes"] == {"train": 60, "test": 30, "public": 150, "public_mix": 30, "classes": 2}
    assert r["config"]["sample"]["seed"] == 0 and r["config"]["method_params"]["ridge"] == {"lam": 1e-4}
    assert r["baseline_accuracy"] > 0.8  # the synthetic topics are separable for the target model
    for setting in ("in_distribution", "public"):
        assert set(r["settings"][setting]) == {"ridge", "ridge_scaled", "ridge_cv", "cca"}
    assert 0 <= r["settings"]["public_plus_k"]["32"]["ridge"]["accuracy"] <= 1
    assert r["ood"]["ood_dataset"] == "qs" and 0 <= r["ood"]["public"]["ridge"]["auroc"] <= 1
    assert r["similarity"]["cka_test"] > r["similarity"]["cka_test_shuffled"]
    assert "60" in r["settings"]["public_corpus_size"]

    assert (
        main(
            [
                "matrix",
                "--models",
                "wordllama",
                "glove",
                "--datasets",
                str(tree / "tiny"),
                "--out",
                str(out / "cka_matrix.json"),
                *common,
            ]
        )
        == 0
    )
    m = json.loads((out / "cka_matrix.json").read_text())
    assert m["cka"]["tiny"][0][0] == pytest.approx(1.0)
    assert (
        main(
            [
                "run",
                "--pair",
                "wordllama",
                "glove",
                "--datasets",
                str(tree / "tiny"),
                "--public",
                str(tree / "wiki"),
                "--setting",
                "mix",
                "--methods",
                "ridge",
                "ridge_scaled",
                "--public-mix",
                "questions:20",
                "--out",
                str(out / "runs-mix"),
                *common,
            ]
        )
        == 0
    )
    assert main(["report", "--results", str(out), "--out", str(out)]) == 0
    table = (out / "tables.md").read_text()
    assert "WordLlama <- GloVe" in table and "tiny" in table and "questions:20" in table
    assert {"cka_heatmap.png", "retention_bars.png", "ood_roc.png"} <= {p.name for p in out.glob("*.png")}


def test_test_only_dataset_is_split_without_overlap(tree: Path) -> None:
    from helix_eval.data import SampleSpec, load_labelled

    data = load_labelled(tree / "qs", SampleSpec(train_size=100, test_size=100))
    assert len(data.train.texts) == 30 and len(data.test.texts) == 30
    assert not set(data.train.texts) & set(data.test.texts)
    assert "split" in data.split_note
