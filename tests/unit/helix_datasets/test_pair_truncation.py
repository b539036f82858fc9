"""Pair datasets: text and text_pair are cut separately, and cut rows are counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helix_datasets import cut_parts, load_split, parse_labelled_jsonl


def _pair_rows(n: int) -> list[str]:
    rows = []
    for i in range(n):
        first = ("long premise " * 40) if i % 3 == 0 else f"short premise {i}"
        rows.append(json.dumps({"text": first, "text_pair": f"hypothesis {i}", "label": i % 2}))
    return rows


def test_each_part_is_cut_on_its_own() -> None:
    joined, cut = cut_parts("a" * 50, "b" * 5, 10)
    assert joined == "a" * 10 + "\n" + "b" * 5 and cut
    joined, cut = cut_parts("a" * 5, None, 10)
    assert joined == "a" * 5 and not cut
    assert cut_parts("a" * 50, "b", None) == ("a" * 50 + "\nb", False)


def test_second_sentence_survives_a_long_first_one() -> None:
    split = parse_labelled_jsonl(_pair_rows(9), max_chars=100)
    assert all(t.split("\n")[1] == f"hypothesis {i}" for i, t in enumerate(split.texts))
    assert sum(split.cut) == 3 and split.cut[0] and not split.cut[1]
    assert parse_labelled_jsonl(_pair_rows(3)).cut == ()


def test_loaded_samples_keep_their_cut_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(_pair_rows(30)) + "\n")
    (folder / "test.jsonl").write_text("\n".join(_pair_rows(12)) + "\n")
    sub = load_split(tmp_path, "pairs", "train", limit=10, seed=0, max_chars=100)
    assert len(sub.cut) == 10 and sum(sub.cut) == sum(t.startswith("long") for t in sub.texts)

    from helix_eval.data import SampleSpec, load_labelled

    data = load_labelled(folder, SampleSpec(train_size=30, test_size=12, max_chars=100))
    assert data.cut_rows == {"train": 10, "test": 4}
    assert all("hypothesis" in t for t in data.train.texts)
    assert "pairs/train: 10 of 30 rows cut to 100 characters" in capsys.readouterr().err


def test_smaller_samples_nest_in_larger_ones(tmp_path: Path) -> None:
    from helix_eval.data import SampleSpec, load_labelled

    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(_pair_rows(60)) + "\n")
    (folder / "test.jsonl").write_text("\n".join(_pair_rows(30)) + "\n")
    small = load_labelled(folder, SampleSpec(train_size=10, test_size=5))
    large = load_labelled(folder, SampleSpec(train_size=40, test_size=20))
    assert set(small.train.texts) <= set(large.train.texts) and set(small.test.texts) <= set(large.test.texts)
