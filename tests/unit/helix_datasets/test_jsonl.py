from __future__ import annotations

from pathlib import Path

import pytest

from helix_datasets import dataset_path, load_split, parse_labelled_jsonl


def test_parses_integer_and_string_labels() -> None:
    ints = parse_labelled_jsonl(['{"text": "a", "label": 0}', "", '{"text": "b", "label": 1}'], ["neg", "pos"])
    assert ints.labels == [0, 1] and ints.class_names == ["neg", "pos"]
    strs = parse_labelled_jsonl(
        ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": "c", "label": "x"}']
    )
    assert strs.labels == [0, 1, 0] and strs.class_names == ["x", "y"]
    pair = parse_labelled_jsonl(['{"text": "a", "text_pair": "b", "label": 0}', '{"text": "c", "label": 1}'])
    assert pair.texts[0] == "a\nb"


@pytest.mark.parametrize(
    "lines,names,message",
    [
        (['{"text": "a", "label": 0}', "not json"], None, "line 2: not JSON"),
        (['{"text": "a"}'], None, "line 1: expected an object"),
        (['{"text": 3, "label": 0}'], None, "line 1: each row needs a string 'text'"),
        (['{"text": "a", "label": 0}', '{"text": "b", "label": "x"}'], None, "mix"),
        (['{"text": "a", "label": 0}', '{"text": "b", "label": 0}'], None, "two distinct labels"),
        (['{"text": "a", "label": 0}', '{"text": "b", "label": 5}'], ["a", "b"], r"\[0, 2\)"),
        (['{"text": "a", "label": "x"}', '{"text": "b", "label": "z"}'], ["x", "y"], "not among the class names"),
        ([], None, "no labelled rows"),
    ],
)
def test_bad_rows_are_named(lines: list[str], names: list[str] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_labelled_jsonl(lines, names)


def test_paths_cannot_escape_the_dataset_root(tmp_path: Path) -> None:
    for bad in ("../etc", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            dataset_path(tmp_path, bad, "train.jsonl")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_split(tmp_path, "nothing", "train")


def test_seeded_subsample_is_stable(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(f'{{"text": "t{i}", "label": {i % 2}}}' for i in range(50)))
    a = load_split(tmp_path, "toy", "train", limit=10, seed=3)
    b = load_split(tmp_path, "toy", "train", limit=10, seed=3)
    assert a == b and len(a.texts) == 10
