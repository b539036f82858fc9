"""The text sets an experiment embeds, chosen deterministically so that every run (and every
model) sees the same texts and the embedding cache is hit on reruns.

A labelled dataset is any folder in the ``../shared/datasets`` format: ``train.jsonl`` and
``test.jsonl`` (or only ``test.jsonl``, which is then split in two by a seeded permutation),
optional ``labels.json``. Texts are cut to ``max_chars`` characters so long documents (IMDB)
cost a bounded amount for every model and every model sees exactly the same input.
"""

from __future__ import annotations

import random
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
    """Train and test texts with labels; ``split_note`` says how the split was made."""

    name: str
    train: LabelledSplit
    test: LabelledSplit
    split_note: str


def _cut(texts: list[str], max_chars: int) -> list[str]:
    return [t[:max_chars] for t in texts]


def _subsample(split: LabelledSplit, limit: int, seed: int) -> LabelledSplit:
    if limit >= len(split.texts):
        return split
    idx = sorted(random.Random(seed).sample(range(len(split.texts)), limit))
    return LabelledSplit([split.texts[i] for i in idx], [split.labels[i] for i in idx], split.class_names)


def _truncate(split: LabelledSplit, max_chars: int) -> LabelledSplit:
    return LabelledSplit(_cut(split.texts, max_chars), split.labels, split.class_names)


def load_labelled(folder: Path, spec: SampleSpec) -> LabelledSet:
    """Load ``folder`` as train/test, subsampled and truncated per ``spec``."""
    folder = Path(folder).resolve()
    root, name = folder.parent, folder.name
    if (folder / "train.jsonl").exists():
        train = load_split(root, name, "train", limit=spec.train_size, seed=spec.seed)
        test = load_split(root, name, "test", limit=spec.test_size, seed=spec.seed)
        note = "train.jsonl / test.jsonl"
    else:
        full = load_split(root, name, "test")
        order = list(range(len(full.texts)))
        random.Random(spec.seed).shuffle(order)
        half = len(order) // 2

        def pick(ids: list[int]) -> LabelledSplit:
            return LabelledSplit([full.texts[i] for i in ids], [full.labels[i] for i in ids], full.class_names)

        train = _subsample(pick(sorted(order[:half])), spec.train_size, spec.seed)
        test = _subsample(pick(sorted(order[half:])), spec.test_size, spec.seed)
        note = f"test.jsonl only: split in halves by a random.Random({spec.seed}) permutation"
    return LabelledSet(name, _truncate(train, spec.max_chars), _truncate(test, spec.max_chars), note)


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
