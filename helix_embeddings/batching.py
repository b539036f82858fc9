"""Split a list of texts into request-sized batches, preserving order.

Why: every embedding API caps a request both by item count (OpenAI 2048,
Cohere 96, Gemini 100) and, for OpenAI, by total tokens (300k). Local backends
only need the count cap. A single text heavier than the weight cap still gets
a batch of its own: the API will truncate or reject it with a clear error,
which is better than silently dropping it here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def utf8_len(text: str) -> int:
    """UTF-8 byte length: an upper bound on BPE token counts (every token is at least one byte).

    Why not a tokenizer: ``tiktoken`` would be another dependency (and downloads
    its vocabularies at run time); a guaranteed upper bound is enough to stay
    under a per-request token cap.
    """
    return len(text.encode("utf-8", errors="surrogatepass"))


def plan_batches(
    texts: Sequence[str],
    max_items: int,
    max_weight: int | None = None,
    weight: Callable[[str], int] = utf8_len,
) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` covering ``texts`` in order, each within both caps."""
    if max_items <= 0:
        raise ValueError(f"max_items must be positive, got {max_items}")
    spans: list[tuple[int, int]] = []
    start, load = 0, 0
    for i, text in enumerate(texts):
        w = weight(text) if max_weight is not None else 0
        full = i - start >= max_items or (max_weight is not None and i > start and load + w > max_weight)
        if full:
            spans.append((start, i))
            start, load = i, 0
        load += w
    if start < len(texts):
        spans.append((start, len(texts)))
    return spans
