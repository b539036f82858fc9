"""The text sets an experiment embeds, chosen deterministically so that every run (and every
model) sees the same texts and the embedding cache is hit on reruns.

A labelled dataset is any folder in the ``../shared/datasets`` format: ``train.jsonl`` and
``test.jsonl`` (or only ``test.jsonl``, which is then split in two by a seeded permutation),
optional ``labels.json``. Texts are cut to ``max_chars`` characters so long documents (IMDB)
cost a bounded amount for every model and every model sees exactly the same input; in pair
datasets ``text`` and ``text_pair`` are cut separately (each to ``max_chars``), so a long first
sentence never pushes the second one out, and the number of rows that lost text is reported.

Samples are ``random.Random(seed).sample`` draws (the draws every published result used). Python
draws them one index at a time from one random stream, so a smaller sample is the first rows of a
larger one, and the embedding cache (keyed per text, not per sample) only embeds the new rows when a
size grows. The one exception is Python's switch between its two sampling algorithms (it depends on
the sample size relative to the split size, e.g. 1,000 vs 60,000 of 120,000 rows), where most but not
all rows are shared.
"""

from __future__ import annotations

import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from helix_datasets import LabelledSplit, load_split, load_texts

DEFAULT_MAX_CHARS = 400


@dataclass(frozen=True)
class SampleSpec:
    """Every knob that decides which texts an experiment uses (recorded with results)."""

    train_size: int = 1000
    test_size: int = 500
    public_size: int = 4000
    max_chars: int = DEFAULT_MAX_CHARS
    seed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class LabelledSet:
    """Train and test texts with labels; ``split_note`` says how the split was made and
    ``cut_rows`` how many rows of each sample lost characters to ``max_chars``."""

    name: str
    train: LabelledSplit
    test: LabelledSplit
    split_note: str
    cut_rows: dict[str, int]


def _cut(texts: list[str], max_chars: int) -> list[str]:
    return [t[:max_chars] for t in texts]


def nested_sample(n: int, limit: int | None, seed: int) -> list[int]:
    """``limit`` of ``range(n)`` drawn by ``random.Random(seed).sample``, in file order (all rows if fewer)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _warn_cut(name: str, part: str, split: LabelledSplit, max_chars: int) -> int:
    count = sum(split.cut)
    if count:
        print(
            f"warning: {name}/{part}: {count} of {len(split.texts)} rows cut to {max_chars} characters "
            "(per part: text and text_pair are cut separately)",
            file=sys.stderr,
            flush=True,
        )
    return count


def load_labelled(folder: Path, spec: SampleSpec, test_size: int | None = None) -> LabelledSet:
    """Load ``folder`` as train/test, subsampled (nested samples) and truncated per ``spec``.

    ``test_size`` overrides ``spec.test_size`` (an OOD set's size is its own setting)."""
    folder = Path(folder).resolve()
    root, name = folder.parent, folder.name
    n_test = spec.test_size if test_size is None else test_size
    if (folder / "train.jsonl").exists():
        full_tr = load_split(root, name, "train", max_chars=spec.max_chars)
        full_te = load_split(root, name, "test", max_chars=spec.max_chars)
        train = full_tr.pick(nested_sample(len(full_tr.texts), spec.train_size, spec.seed))
        test = full_te.pick(nested_sample(len(full_te.texts), n_test, spec.seed))
        note = "train.jsonl / test.jsonl"
    else:
        full = load_split(root, name, "test", max_chars=spec.max_chars)
        order = list(range(len(full.texts)))
        random.Random(spec.seed).shuffle(order)
        half = len(order) // 2
        first, second = sorted(order[:half]), sorted(order[half:])
        train = full.pick([first[i] for i in nested_sample(len(first), spec.train_size, spec.seed)])
        test = full.pick([second[i] for i in nested_sample(len(second), n_test, spec.seed)])
        note = f"test.jsonl only: split in halves by a random.Random({spec.seed}) permutation"
    cut_rows = {
        "train": _warn_cut(name, "train", train, spec.max_chars),
        "test": _warn_cut(name, "test", test, spec.max_chars),
    }
    return LabelledSet(name, train, test, note, cut_rows)


def load_public(corpus: Path, spec: SampleSpec, size: int | None = None) -> list[str]:
    """Unlabelled public texts: ``corpus`` is a folder holding ``passages.jsonl`` or a jsonl file."""
    corpus = Path(corpus).resolve()
    folder, filename = (corpus, "passages.jsonl") if corpus.is_dir() else (corpus.parent, corpus.name)
    texts = load_texts(folder.parent, folder.name, filename)
    order = list(range(len(texts)))
    random.Random(spec.seed).shuffle(order)  # a prefix of one permutation: smaller corpora nest in larger ones
    return _cut([texts[i] for i in order[: size or spec.public_size]], spec.max_chars)


def load_mix_texts(item: str, spec: SampleSpec, public: Path, exclude: str | None = None) -> list[str]:
    """Extra public texts for the alignment corpus, from one ``--public-mix`` item.

    * ``questions[:COUNT]``: templated questions made from public-corpus sentences that are
      *not* in the base public sample (the tail of the same permutation), see :mod:`.questions`.
    * ``FOLDER[:COUNT]``: unlabelled texts of another labelled dataset (its evaluation test sample,
      labels unused). The dataset being evaluated (``exclude``) is never mixed in.
    """
    from .questions import templated_questions

    head, _, count_s = item.partition(":")
    count = int(count_s) if count_s else 1000
    if head == "questions":
        corpus = Path(public).resolve()
        folder, filename = (corpus, "passages.jsonl") if corpus.is_dir() else (corpus.parent, corpus.name)
        texts = load_texts(folder.parent, folder.name, filename)
        order = list(range(len(texts)))
        random.Random(spec.seed).shuffle(order)
        tail = [texts[i] for i in order[spec.public_size :]][::-1]
        return _cut(templated_questions(tail, count, spec.seed), spec.max_chars)
    folder = Path(head).resolve()
    if exclude is not None and folder.name == exclude:
        return []
    return load_labelled(folder, spec).test.texts[:count]
