"""MMLU through a (stitched) model: generative accuracy and the log-likelihood form (paper Tables 2, 6).

Generative: greedy decoding from the prompt ending in "Answer:", stopped at the first valid answer
letter (a standalone A-D); no letter within the token budget counts as wrong. Log-likelihood
(lm-eval-harness style): the target's log-probabilities of " A", " B", " C", " D" at the first
step; the highest wins. It costs one source forward pass and is less noisy than free generation.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .data import LETTERS, MmluQuestion, mmlu_prompt
from .decode import Stitched

_LETTER = re.compile(r"(?<![A-Za-z0-9])([ABCD])(?![A-Za-z0-9])")
DEFAULT_MMLU_NEW_TOKENS = 32


def first_letter(text: str) -> str | None:
    """The first standalone answer letter in ``text`` ("B", " (C)", "D." count; "Apple" does not)."""
    m = _LETTER.search(text)
    return m.group(1) if m else None


def shots_by_subject(dev: Sequence[MmluQuestion], k: int) -> dict[str, list[MmluQuestion]]:
    """The first ``k`` dev exemplars of each subject (the standard few-shot examples)."""
    out: dict[str, list[MmluQuestion]] = defaultdict(list)
    for q in dev:
        if len(out[q.subject]) < k:
            out[q.subject].append(q)
    return out


def evaluate_mmlu(
    system: Stitched,
    questions: Sequence[MmluQuestion],
    *,
    shots: dict[str, list[MmluQuestion]] | None = None,
    max_new_tokens: int = DEFAULT_MMLU_NEW_TOKENS,
    generative: bool = True,
    keep: int = 5,
) -> dict[str, Any]:
    """Accuracies of one system on ``questions``; ``keep`` sample outputs are kept for the report."""
    letter_ids = [system.target.single_token_id(f" {x}") for x in LETTERS]
    gen_hits = ll_hits = answered = new_tokens = 0
    seconds = 0.0
    samples: list[dict[str, Any]] = []
    predictions_ll: list[int] = []
    start = time.perf_counter()
    for i, q in enumerate(questions):
        prompt = mmlu_prompt(q, (shots or {}).get(q.subject, []))
        g = system.generate(
            prompt,
            max_new_tokens if generative else 1,
            stop=lambda text: first_letter(text) is not None,
            score_ids=letter_ids,
        )
        scores = g.extra["first_scores"]
        ll = int(np.argmax(scores))
        predictions_ll.append(ll)
        ll_hits += ll == q.answer
        if generative:
            letter = first_letter(g.text)
            answered += letter is not None
            gen_hits += letter == q.answer_letter
            new_tokens += len(g.ids)
            seconds += g.seconds
            if i < keep:
                samples.append({"subject": q.subject, "answer": q.answer_letter, "output": g.text, "letter": letter})
    n = len(questions)
    out: dict[str, Any] = {
        "questions": n,
        "loglik_accuracy": ll_hits / n if n else 0.0,
        "loglik_prediction_counts": [predictions_ll.count(k) for k in range(4)],
        "loglik_predictions": predictions_ll,
        "seconds": time.perf_counter() - start,
    }
    if generative:
        out.update(
            {
                "generative_accuracy": gen_hits / n if n else 0.0,
                "answered_fraction": answered / n if n else 0.0,
                "mean_new_tokens": new_tokens / n if n else 0.0,
                "tokens_per_second": new_tokens / seconds if seconds > 0 else 0.0,
                "samples": samples,
            }
        )
    return out
