"""``helix-eval run``: per-dataset OOD, a note for datasets without one, resumable result folders, and
``report`` on a run folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helix_eval.cli import choose_ood, main, parse_ood

pytest.importorskip("wordllama")

WORDS = {0: ["goal", "team", "match", "coach", "league"], 1: ["pasta", "oven", "sauce", "garlic", "bread"]}


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": " ".join(rng.choice(WORDS[i % 2]) for _ in range(6)), "label": i % 2} for i in range(n)]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    for name, seed in (("alpha", 0), ("beta", 1)):
        _write(root / name, "train.jsonl", _rows(70, seed))
        _write(root / name, "test.jsonl", _rows(40, seed + 10))
    _write(root / "other", "test.jsonl", [{"text": f"question number {i}?", "label": i % 2} for i in range(50)])
    words = [w for ws in WORDS.values() for w in ws] + ["river", "city", "music"]
    rng = random.Random(5)
    _write(
        root / "wiki", "passages.jsonl", [{"text": " ".join(rng.choice(words) for _ in range(8))} for _ in range(120)]
    )
    return root


def test_ood_choice_per_dataset() -> None:
    every, per = parse_ood(["alpha=/x/other", "/y/all"])
    assert per == {"alpha": Path("/x/other")} and every == Path("/y/all")
    assert choose_ood(Path("/d/alpha"), every, per)[0] == Path("/x/other")
    assert choose_ood(Path("/d/beta"), every, per)[0] == Path("/y/all")
    ood, note = choose_ood(Path("/d/unknown"), None, {})
    assert ood is None and "--ood unknown=FOLDER" in note


def test_run_resumes_and_report_reads_the_run_folder(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [
        "run",
        "--pair",
        "wordllama",
        "glove",
        "--datasets",
        str(tree / "alpha"),
        str(tree / "beta"),
        "--public",
        str(tree / "wiki"),
        "--ood",
        f"alpha={tree / 'other'}",
        "--ood-size",
        "20",
        "--setting",
        "quick",
        "--methods",
        "ridge",
        "ridge_scaled",
        "--head-c",
        "1.0",
        "--train-size",
        "60",
        "--test-size",
        "30",
        "--public-size",
        "100",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "note: beta: no OOD run: beta has no built-in OOD set" in captured.err
    alpha = json.loads((out / "wordllama__glove__alpha.json").read_text())
    beta = json.loads((out / "wordllama__glove__beta.json").read_text())
    assert alpha["ood"]["ood_size"] == 20 and alpha["config"]["ood_size"] == 20
    assert "ood" not in beta and "no built-in OOD set" in beta["ood_note"]
    assert alpha["config"]["head"]["C"] == 1.0 and alpha["heads"]["baseline"]["C"] == 1.0
    assert alpha["provider_held"]["prediction_agreement"] == 1.0
    assert alpha["settings"]["public_plus_k"]["32"]["few_shot_own_head_c"] == [1.0]

    (out / "wordllama__glove__beta.json").unlink()  # as if the run had stopped after alpha
    stamp = (out / "wordllama__glove__alpha.json").stat().st_mtime_ns
    assert main(args) == 0
    assert "kept" in capsys.readouterr().out
    assert (out / "wordllama__glove__alpha.json").stat().st_mtime_ns == stamp
    assert (out / "wordllama__glove__beta.json").exists()

    assert main(["report", "--results", str(out)]) == 0
    table = (out / "tables.md").read_text()
    assert f"from `{out}/*.json`" in table and "WordLlama <- GloVe" in table
    assert main(["report", "--results", str(out)]) == 0  # its own summary.json is not read as a run


def test_unknown_ood_name_is_refused(tree: Path, tmp_path: Path) -> None:
    code = main(
        ["run", "--pair", "wordllama", "glove", "--datasets", str(tree / "alpha"), "--ood", f"nope={tree / 'other'}"]
        + ["--out", str(tmp_path / "x"), "--cache-dir", str(tmp_path / "cache")]
    )
    assert code == 2
