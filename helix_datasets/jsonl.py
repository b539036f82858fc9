from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PAIR_SEPARATOR = "\n"
#: Every class costs a column of weights and a slot in every classify reply, so labels are capped.
DEFAULT_MAX_CLASSES = 256


@dataclass(frozen=True)
class LabelledSplit:
    """Texts with integer labels. ``cut`` marks, per row, whether a part was truncated at load time
    (empty when no limit was asked for), so a sample can say how many of its own rows lost text."""

    texts: list[str]
    labels: list[int]
    class_names: list[str]
    cut: tuple[bool, ...] = ()

    def pick(self, idx: list[int]) -> LabelledSplit:
        """The rows ``idx`` (in that order), keeping each row's cut flag."""
        cut = tuple(self.cut[i] for i in idx) if self.cut else ()
        return LabelledSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.class_names, cut)


def dataset_path(root: Path, dataset: str, filename: str) -> Path:
    """Resolve root/dataset/filename refusing anything that could escape root."""
    if not _NAME.match(dataset) or not _NAME.match(filename) or dataset.startswith(".") or filename.startswith("."):
        raise ValueError(f"invalid dataset or file name: {dataset!r}/{filename!r}")
    return root / dataset / filename


def _json_line(line: str, lineno: int) -> Any:
    """One parsed JSONL line; a document nested too deeply for the parser is bad input, not a crash."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {lineno}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError(f"line {lineno}: JSON nested too deeply") from None


def _row_parts(row: dict[str, Any]) -> tuple[str, str | None]:
    text = row.get("text")
    if not isinstance(text, str):
        raise ValueError("each row needs a string 'text'")
    if not text.strip():
        raise ValueError("empty 'text'")
    pair = row.get("text_pair")
    return text, None if pair is None else str(pair)


def _row_text(row: dict[str, Any]) -> str:
    text, pair = _row_parts(row)
    return text if pair is None else f"{text}{PAIR_SEPARATOR}{pair}"


def cut_parts(text: str, pair: str | None, max_chars: int | None) -> tuple[str, bool]:
    """Join ``text`` and ``text_pair`` after cutting *each* to ``max_chars``; say whether anything was cut.

    Why per part: cutting the joined string drops the second sentence of a long pair entirely, and a
    pair task (entailment, paraphrase) without its second sentence is a different task."""
    if max_chars is None:
        return (text if pair is None else f"{text}{PAIR_SEPARATOR}{pair}"), False
    was_cut = len(text) > max_chars or (pair is not None and len(pair) > max_chars)
    joined = text[:max_chars] if pair is None else f"{text[:max_chars]}{PAIR_SEPARATOR}{pair[:max_chars]}"
    return joined, was_cut


def check_class_names(names: list[str], max_classes: int = DEFAULT_MAX_CLASSES) -> None:
    """Class names label a head's outputs: at most `max_classes`, none empty, no two alike."""
    if len(names) > max_classes:
        raise ValueError(f"{len(names)} classes exceed the limit of {max_classes}")
    if any(not isinstance(n, str) or not n.strip() for n in names):
        raise ValueError("class names must be non-empty strings")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate class names {duplicates[:5]}")


def parse_labelled_jsonl(
    lines: Iterable[str],
    class_names: list[str] | None = None,
    max_classes: int = DEFAULT_MAX_CLASSES,
    max_chars: int | None = None,
) -> LabelledSplit:
    """Rows {"text", "label", optional "text_pair"}; labels are ints (indices into class_names) or
    strings (class names, collected in first-seen order if class_names is not given).

    Labels are bounded and dense: without class names, integer labels must be exactly 0..k-1, so a
    row labelled 1000000 cannot make a million-class head; with or without names, at most
    `max_classes` classes. With ``max_chars``, ``text`` and ``text_pair`` are cut separately
    (see :func:`cut_parts`) and ``cut`` records which rows lost characters."""
    if class_names is not None:
        check_class_names(list(class_names), max_classes)
    texts: list[str] = []
    cut: list[bool] = []
    raw: list[int | str] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = _json_line(line, lineno)
        if not isinstance(row, dict) or "label" not in row:
            raise ValueError(f"line {lineno}: expected an object with 'text' and 'label'")
        try:
            joined, was_cut = cut_parts(*_row_parts(row), max_chars)
            texts.append(joined)
            cut.append(was_cut)
        except ValueError as exc:
            raise ValueError(f"line {lineno}: {exc}") from None
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise ValueError(f"line {lineno}: label must be an integer or a class name")
        raw.append(label)
    if not texts:
        raise ValueError("no labelled rows")
    strings = [v for v in raw if isinstance(v, str)]
    if len(strings) == len(raw):
        names = list(class_names) if class_names else list(dict.fromkeys(strings))
        unknown = sorted({v for v in strings if v not in names})
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the class names {names}")
        labels = [names.index(v) for v in strings]
    elif all(isinstance(v, int) for v in raw):
        labels = [int(v) for v in raw]
        if class_names:
            names = list(class_names)
            if min(labels) < 0 or max(labels) >= len(names):
                raise ValueError(f"integer labels must lie in [0, {len(names)})")
        else:
            distinct = sorted(set(labels))
            if distinct[0] < 0 or distinct[-1] >= max_classes:
                raise ValueError(f"integer labels must lie in [0, {max_classes})")
            if distinct != list(range(len(distinct))):
                gaps = sorted(set(range(distinct[-1] + 1)) - set(distinct))
                raise ValueError(f"integer labels must be dense (0..k-1) without class names; missing {gaps[:5]}")
            names = [str(i) for i in distinct]
    else:
        raise ValueError("labels mix integers and strings")
    check_class_names(names, max_classes)
    if len(set(labels)) < 2:
        raise ValueError("a classifier needs at least two distinct labels")
    return LabelledSplit(texts=texts, labels=labels, class_names=names, cut=tuple(cut) if max_chars else ())


def load_split(
    root: Path,
    dataset: str,
    split: str,
    limit: int | None = None,
    seed: int = 0,
    max_classes: int = DEFAULT_MAX_CLASSES,
    max_chars: int | None = None,
) -> LabelledSplit:
    path = dataset_path(root, dataset, f"{split}.jsonl")
    if not path.exists():
        raise FileNotFoundError(f"dataset split not found: {dataset}/{split}.jsonl under {root}")
    names_path = dataset_path(root, dataset, "labels.json")
    names = json.loads(names_path.read_text()) if names_path.exists() else None
    with path.open(encoding="utf-8") as fh:
        data = parse_labelled_jsonl(fh, names, max_classes, max_chars)
    if limit is not None and limit < len(data.texts):
        data = data.pick(sorted(random.Random(seed).sample(range(len(data.texts)), limit)))
    return data


def load_texts(root: Path, dataset: str, filename: str, limit: int | None = None, seed: int = 0) -> list[str]:
    """Unlabelled texts (e.g. wikipedia/passages.jsonl); a seeded sample keeps file order."""
    path = dataset_path(root, dataset, filename)
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {dataset}/{filename} under {root}")
    texts = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                row = _json_line(line, lineno)
                if not isinstance(row, dict):
                    raise ValueError(f"line {lineno}: expected an object with 'text'")
                texts.append(_row_text(row))
    if limit is not None and limit < len(texts):
        idx = sorted(random.Random(seed).sample(range(len(texts)), limit))
        texts = [texts[i] for i in idx]
    return texts
