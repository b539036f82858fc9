"""Greedy decoding, native and stitched (paper Section 3.2), with a key/value cache.

Stitched step: run the source model on the text so far, map its last hidden state into the target's
space, apply the target's frozen LM head, append the chosen token's *text*, and continue until an
end-of-sequence token of the target or ``max_new_tokens``.

Why a cache is possible at all: the source re-tokenizes the growing text, and a new piece can merge
with the previous token (" the" + "re" -> " there"), so the token sequence is not append-only. But
a causal model's state at position i depends only on tokens 0..i, so the key/value cache of the
longest common prefix of the old and new token ids stays valid: :class:`IncrementalRunner` crops
the cache back to that prefix and runs only the tokens after it, usually one or two per step
instead of the whole text. When the cache cannot be cropped (a sliding-window layer beyond its
window), it starts over, which is correct but slower.

The generated text is the target tokenizer's decoding of all chosen ids (not piece by piece), so
characters split over several byte tokens come out whole once complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from helix_alignment.ridge import AffineMap

from .models import CausalLM
from .tokens import tokenize

DEFAULT_MAX_NEW_TOKENS = 128


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class IncrementalRunner:
    """Runs a model on a token sequence that changes a little per call, reusing the cached prefix."""

    def __init__(self, lm: CausalLM, reuse: bool = True) -> None:
        self.lm = lm
        self.reuse = reuse
        self.ids: list[int] = []
        self.cache: Any = None
        self.last: torch.Tensor | None = None
        #: tokens actually run through the model (the cost), and restarts from scratch
        self.computed = 0
        self.restarts = 0

    @torch.inference_mode()
    def last_hidden(self, ids: list[int]) -> torch.Tensor:
        """The last hidden state (dim,) after reading ``ids``."""
        if not ids:
            raise ValueError("cannot run a model on an empty token sequence")
        if ids == self.ids and self.last is not None:
            return self.last
        keep = min(common_prefix(self.ids, ids), len(ids) - 1)
        if self.cache is not None and keep < len(self.ids):
            try:
                # A negative argument removes that many tokens, in old and new transformers alike.
                self.cache.crop(keep - len(self.ids))
            except (RuntimeError, ValueError):
                self.cache, keep = None, 0
                self.restarts += 1
        if self.cache is None or not self.reuse:
            self.cache, keep = None, 0
        hidden, self.cache = self.lm.body(torch.tensor([ids[keep:]]), self.cache)
        self.computed += len(ids) - keep
        self.ids = list(ids)
        self.last = hidden[0, -1]
        return self.last


@dataclass
class Generation:
    """One greedy continuation and what it cost."""

    text: str
    ids: list[int]
    stopped: str  # "eos", "stop" (the caller's stop condition) or "length"
    seconds: float
    source_tokens_computed: int
    restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


class Stitched:
    """Source body + affine map + target head, decoding greedily from a prompt.

    ``mode="text"`` re-tokenizes the text for the source at each step (any pair of tokenizers).
    ``mode="tokens"`` feeds the chosen ids straight back (only when the vocabularies are identical,
    e.g. a model stitched to itself); this is how a model decodes on its own. ``cache=False`` re-runs the
    source on the whole text at every step (the quadratic baseline the cache is measured against).
    """

    def __init__(
        self, source: CausalLM, target: CausalLM, amap: AffineMap | None, mode: str = "text", cache: bool = True
    ) -> None:
        if mode not in {"text", "tokens"}:
            raise ValueError(f"unknown stitching mode {mode!r}")
        if mode == "tokens" and source.tokenizer.get_vocab() != target.tokenizer.get_vocab():
            raise ValueError("token-mode stitching needs identical vocabularies; use mode='text'")
        if amap is not None and (amap.source_dim, amap.target_dim) != (source.dim, target.dim):
            raise ValueError(f"map is {amap.source_dim}->{amap.target_dim}, models are {source.dim}->{target.dim}")
        self.source, self.target, self.amap, self.mode, self.cache = source, target, amap, mode, cache
        self._weight = None if amap is None else torch.from_numpy(np.asarray(amap.weight, dtype=np.float32))
        self._bias = None if amap is None else torch.from_numpy(np.asarray(amap.bias, dtype=np.float32))

    def map_hidden(self, source_hidden: torch.Tensor) -> torch.Tensor:
        """Source states (..., dim_source) carried into the target's space (unchanged without a map)."""
        if self._weight is None or self._bias is None:
            return source_hidden
        return source_hidden @ self._weight + self._bias

    def target_logits(self, source_hidden: torch.Tensor) -> torch.Tensor:
        """Target's next-token logits from source states (..., dim_source)."""
        return self.target.head(self.map_hidden(source_hidden))

    @torch.inference_mode()
    def generate(
        self,
        prompt: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        stop: Callable[[str], bool] | None = None,
        score_ids: Sequence[int] = (),
    ) -> Generation:
        """Greedy continuation of ``prompt``; ``stop(text_so_far)`` may end it early.

        ``score_ids``: target token ids whose log-probabilities at the first step are returned in
        ``extra["first_scores"]`` (the log-likelihood form of multiple choice, for free).
        """
        runner = IncrementalRunner(self.source, reuse=self.cache)
        eos = self.target.eos_ids
        prompt_ids = tokenize(self.source.tokenizer, prompt).ids
        out: list[int] = []
        text = ""
        reason = "length"
        extra: dict[str, Any] = {}
        start = time.perf_counter()
        for step in range(max_new_tokens):
            if self.mode == "tokens":
                ids = prompt_ids + out
            else:
                ids = tokenize(self.source.tokenizer, prompt + text).ids
            logits = self.target_logits(runner.last_hidden(ids))
            if step == 0 and score_ids:
                extra["first_scores"] = torch.log_softmax(logits, dim=-1)[list(score_ids)].tolist()
            token = int(torch.argmax(logits))
            if token in eos:
                reason = "eos"
                break
            out.append(token)
            text = self.target.tokenizer.decode(out, skip_special_tokens=False)
            if stop is not None and stop(text):
                reason = "stop"
                break
        seconds = time.perf_counter() - start
        return Generation(text, out, reason, seconds, runner.computed, runner.restarts, extra)


def native(lm: CausalLM) -> Stitched:
    """The model decoding on its own (no map, its own token ids fed back)."""
    return Stitched(lm, lm, None, mode="tokens")
