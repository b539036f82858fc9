"""MMLU and Alpaca rows from the datasets folder, and the plain-text prompts both models read.

Why plain text and no chat template: the map is fitted on text both models read identically, the
base Gemma model has no chat template, and token pairing needs one shared text (see :mod:`.tokens`).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helix_datasets.jsonl import dataset_path

LETTERS = ("A", "B", "C", "D")


def datasets_root() -> Path:
    """``$HELIX_DATASETS``, else ``../shared/datasets`` (the development layout)."""
    return Path(os.environ.get("HELIX_DATASETS", "../shared/datasets"))


def _rows(root: Path, dataset: str, split: str) -> list[dict[str, object]]:
    path = dataset_path(root, dataset, f"{split}.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set HELIX_DATASETS to the datasets folder)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True)
class MmluQuestion:
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: int

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer]


def load_mmlu(root: Path, split: str = "test", n: int | None = 100, seed: int = 0) -> list[MmluQuestion]:
    """``n`` questions drawn with a fixed seed (all when ``n`` is None), in dataset order."""
    rows = _rows(root, "mmlu", split)
    idx = sorted(random.Random(seed).sample(range(len(rows)), n)) if n is not None and n < len(rows) else None
    chosen = [rows[i] for i in idx] if idx is not None else rows
    out = []
    for r in chosen:
        choices = r["choices"]
        if not isinstance(choices, list) or len(choices) != 4:
            raise ValueError("an MMLU row needs four choices")
        answer = r["answer"]
        if not isinstance(answer, int):
            raise ValueError("an MMLU answer must be an integer 0-3")
        c = tuple(str(x) for x in choices)
        out.append(MmluQuestion(str(r["subject"]), str(r["question"]), (c[0], c[1], c[2], c[3]), answer))
    return out


def mmlu_prompt(q: MmluQuestion, shots: Sequence[MmluQuestion] = ()) -> str:
    """The lm-eval-harness MMLU prompt: subject header, optional worked examples, question, "Answer:"."""
    subject = q.subject.replace("_", " ")
    head = f"The following are multiple choice questions (with answers) about {subject}.\n\n"

    def block(x: MmluQuestion) -> str:
        lines = [x.question] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, x.choices, strict=True)]
        return "\n".join(lines) + "\nAnswer:"

    return head + "".join(f"{block(s)} {s.answer_letter}\n\n" for s in shots) + block(q)


@dataclass(frozen=True)
class AlpacaRow:
    instruction: str
    input: str
    output: str

    @property
    def prompt(self) -> str:
        """The Stanford Alpaca template, without its preamble (short prompts keep tiny models on task)."""
        body = f"### Instruction:\n{self.instruction}\n\n"
        if self.input:
            body += f"### Input:\n{self.input}\n\n"
        return body + "### Response:\n"

    @property
    def text(self) -> str:
        """Prompt and reference answer: a training / held-out text for maps."""
        return self.prompt + self.output


_NO_INPUT = {"no input", "noinput", "<no input>", "<noinput>", "none"}


def load_alpaca(root: Path, split: str = "train", n: int | None = None, offset: int = 0) -> list[AlpacaRow]:
    """Rows ``offset .. offset+n`` of a split; placeholder inputs ("No input") become empty."""
    rows = _rows(root, "alpaca", split)
    rows = rows[offset:] if n is None else rows[offset : offset + n]
    out = []
    for r in rows:
        inp = str(r.get("input", "") or "")
        out.append(AlpacaRow(str(r["instruction"]), "" if inp.strip().lower() in _NO_INPUT else inp, str(r["output"])))
    return out
