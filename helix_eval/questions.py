"""Question-style public text made from public sentences by templates.

Why: a linear map learns nothing about directions its alignment corpus does not vary along.
Wikipedia sentences are declarative, so the way each model encodes interrogative form and
wh-words (what TREC's question-type labels hinge on) is unconstrained by a Wikipedia-only corpus.
Rewriting public sentences as questions ("Powell was a leader." -> "Who was a leader?") adds that
variation without any private or labelled data. The questions need not be fluent: alignment data
only has to be embedded by both parties, not answered.
"""

from __future__ import annotations

import random

WH = ("Who", "What", "When", "Where", "Why", "How", "How many", "Which", "What is", "How much")


def templated_questions(sentences: list[str], count: int, seed: int = 0) -> list[str]:
    """``count`` questions: a wh-phrase replaces each sentence's first word(s), the rest is cut to
    3-9 words (questions are short) and ends in '?'."""
    rng = random.Random(seed)
    out: list[str] = []
    pool = [s for s in sentences if len(s.split()) >= 4]
    if not pool:
        return out
    for i in range(count):
        words = pool[i % len(pool)].rstrip(" .!?\"')").split()
        wh = WH[rng.randrange(len(WH))]
        cut = min(len(words) - 1, 1 + (len(words) > 12 and rng.random() < 0.5))
        body = " ".join(words[cut : cut + rng.randint(3, 9)])  # TREC-like length: questions are short
        out.append(f"{wh} {body[:1].lower()}{body[1:]}?")
    return out
