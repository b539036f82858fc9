"""The answer letters' rows of an LLM's LM head, as a linear head over the LLM's last-token state.

Why: an LLM answers a multiple-choice prompt ending in "Answer:" by the logits of " A" .. " D" at its last
position, and those logits are ``h @ E[ids].T (+ b[ids])`` with ``h`` the final hidden state of the last
token (after the final norm) and ``E`` the LM head. So the four rows are a 4-class linear head on the
``causal-lm:...?pooling=last`` embedding of the prompt, which a provider can publish and serve through
HELIX's encrypted classify path like any trained head. Models with final logit soft-capping apply a
monotonic ``tanh`` after the head; the head gives the scores before it, so the chosen letter is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from helix_embeddings.specs import EmbedderSpec, parse_spec

from .data import LETTERS
from .models import CausalLM

#: Tokens kept per prompt by the last-token embedder: the longest zero-shot MMLU prompt has ~1,200 tokens,
#: so nothing is truncated (a truncated prompt would lose its start, see the causal-lm backend).
DEFAULT_MAX_LENGTH = 2048


@dataclass(frozen=True)
class AnswerHead:
    """``scores = x @ weight + bias`` for the answer letters; ``x`` is the model's last-token final state."""

    model: str
    letters: tuple[str, ...]
    token_ids: tuple[int, ...]
    weight: np.ndarray  # (dim, letters)
    bias: np.ndarray  # (letters,)

    def scores(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(x, dtype=np.float64) @ self.weight + self.bias
        return out


def answer_token_id(lm: CausalLM, letter: str) -> int:
    """The id of " <letter>" as a single token; a letter that takes several tokens has no row to publish."""
    ids = lm.tokenizer(f" {letter}", add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"{lm.name}: ' {letter}' is {len(ids)} tokens, not one; its logit is not one head row")
    return int(ids[0])


@torch.inference_mode()
def answer_head(lm: CausalLM, letters: Sequence[str] = LETTERS) -> AnswerHead:
    """The rows of ``lm``'s LM head for " A", " B", ... as a (dim, k) weight and a (k,) bias (zeros without one)."""
    ids = [answer_token_id(lm, x) for x in letters]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{lm.name}: answer letters {list(letters)} share tokens {ids}")
    head = lm.model.get_output_embeddings()
    weight = head.weight.detach()[ids].double().numpy().T.copy()
    bias = head.bias.detach()[ids].double().numpy() if getattr(head, "bias", None) is not None else np.zeros(len(ids))
    return AnswerHead(lm.name, tuple(letters), tuple(ids), weight, bias)


def last_token_spec(spec: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """The embedder spec of ``spec``'s last-token final hidden state (what its LM head reads)."""
    parsed = parse_spec(spec)
    if parsed.backend != "causal-lm":
        raise ValueError(f"{spec!r} is not a causal LM spec (expected causal-lm:<name>, smollm2 or gemma3)")
    options = {**parsed.option_dict, "pooling": "last", "max_length": str(max_length)}
    return str(EmbedderSpec(parsed.backend, parsed.name, tuple(sorted(options.items()))))


def base_spec(spec: str) -> str:
    """``spec`` without the embedder's pooling options: the spec :func:`.models.load_causal_lm` accepts."""
    parsed = parse_spec(spec)
    options = {k: v for k, v in parsed.option_dict.items() if k not in ("pooling", "max_length")}
    return str(EmbedderSpec(parsed.backend, parsed.name, tuple(sorted(options.items()))))
