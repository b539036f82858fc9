"""Labels are bounded and dense, class names unique and non-empty, texts non-empty, and a deeply
nested line is a ValueError (the provider's 422), not a RecursionError."""

from __future__ import annotations

import pytest

from helix_datasets import parse_labelled_jsonl
from helix_datasets.jsonl import check_class_names


def rows(*labels: object) -> list[str]:
    return [f'{{"text": "t{i}", "label": {label}}}' for i, label in enumerate(labels)]


@pytest.mark.parametrize(
    ("lines", "names", "match"),
    [
        (rows(0, 1000), None, r"\[0, 256\)"),
        (rows(0, 1, 1000000), None, r"\[0, 256\)"),
        (rows(0, 2), None, r"dense .*missing \[1\]"),
        (rows(0, -1), None, r"\[0, 256\)"),
        (rows(0, 1), ["a", "a"], "duplicate class names"),
        (rows(0, 1), ["a", ""], "non-empty"),
        (rows(0, 1), [f"c{i}" for i in range(257)], "257 classes exceed the limit of 256"),
        (['{"text": "", "label": 0}', '{"text": "b", "label": 1}'], None, "line 1: empty 'text'"),
        (['{"text": "a", "label": 0}', '{"text": "b", "label": ' + "[" * 20000 + "]" * 20000 + "}"], None, "line 2"),
    ],
)
def test_refused(lines: list[str], names: list[str] | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_labelled_jsonl(lines, names)


def test_max_classes_is_a_parameter() -> None:
    assert parse_labelled_jsonl(rows(0, 1, 2, 3), max_classes=4).class_names == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        parse_labelled_jsonl(rows(0, 1, 2, 3), max_classes=3)
    with pytest.raises(ValueError, match="3 classes exceed the limit of 2"):
        check_class_names(["a", "b", "c"], 2)


def test_sparse_labels_are_fine_with_class_names() -> None:
    """With names, a class may be absent from a (sampled) split: the head simply never predicts it."""
    data = parse_labelled_jsonl(rows(0, 2), ["a", "b", "c"])
    assert data.labels == [0, 2] and data.class_names == ["a", "b", "c"]
