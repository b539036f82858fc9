"""Causal LMs with their LM head, loaded offline from the project's embedder specs.

Why not :class:`helix_embeddings.causal_lm_backend.CausalLMEmbedder`: stitching needs the per-token
last hidden state (the vector the LM head reads, i.e. after the final norm) and the frozen LM head
itself, not a mean-pooled text vector. Weights are found exactly as the ``causal-lm:`` backend finds
them (:func:`helix_embeddings.causal_lm_models.resolve`, GGUF dequantised once into a cache).
"""

from __future__ import annotations

import os

# Must precede any transformers / huggingface_hub import: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import inspect  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helix_embeddings.causal_lm_models import MODEL_CACHE_ENV, resolve  # noqa: E402
from helix_embeddings.specs import parse_spec, reject_unknown_options  # noqa: E402

#: Where dequantised GGUF copies live unless $HELIX_MODEL_CACHE says otherwise (git-ignored).
DEFAULT_MODEL_CACHE = Path(".helix") / "models"


def model_cache_dir(cache_dir: Path | None = None) -> Path:
    """``cache_dir``, else ``$HELIX_MODEL_CACHE``, else ``.helix/models`` under the working directory."""
    if cache_dir is not None:
        return cache_dir
    env = os.environ.get(MODEL_CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_MODEL_CACHE


@dataclass
class CausalLM:
    """A decoder-only LM on CPU in float32: tokenizer, transformer body and frozen LM head."""

    name: str
    model: Any
    tokenizer: Any

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def eos_ids(self) -> frozenset[int]:
        """Every id that ends a generation: the config's EOS id(s) and the tokenizer's EOS."""
        ids: set[int] = set()
        for source in (self.model.config.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(i) for i in source)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return frozenset(ids)

    def body(self, input_ids: torch.Tensor, past: Any = None) -> tuple[torch.Tensor, Any]:
        """Last hidden states (batch, seq, dim) after the final norm, and the updated key/value cache."""
        body = self.model.model
        # transformers >= 5.2x calls the key/value cache ``cache``; earlier versions ``past_key_values``.
        key = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
        out = body(input_ids=input_ids, use_cache=True, **{key: past})
        return out.last_hidden_state, out[key]

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The frozen LM head on (..., dim) states, with the model's final logit soft-capping if it has one."""
        logits: torch.Tensor = self.model.lm_head(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @torch.inference_mode()
    def hidden_states(self, ids: list[int]) -> np.ndarray:
        """Last hidden state of every position of one token sequence, float32 (seq, dim)."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        hidden, _ = self.body(torch.tensor([ids]))
        return np.ascontiguousarray(hidden[0].float().numpy())

    def single_token_id(self, text: str) -> int:
        """The id of ``text`` as one token (e.g. " A"), or its first token if it takes several."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"{self.name}: {text!r} has no tokens")
        return int(ids[0])


def load_causal_lm(spec: str, cache_dir: Path | None = None) -> CausalLM:
    """Load ``spec`` (``smollm2``, ``gemma3``, ``causal-lm:<gguf|dir|id>``) with its LM head, offline.

    Only ``causal-lm`` specs are accepted: generation needs a decoder with an LM head.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parsed = parse_spec(spec)
    if parsed.backend != "causal-lm":
        raise ValueError(f"{spec!r} is not a causal LM spec (expected causal-lm:<name>, smollm2 or gemma3)")
    options = parsed.option_dict
    reject_unknown_options(parsed.backend, options, {"cache_dir"})
    cache = Path(options["cache_dir"]).expanduser() if options.get("cache_dir") else model_cache_dir(cache_dir)
    resolved = resolve(parsed.name, cache)
    headed = cache / f"{Path(resolved.source).name}-with-head"
    if (headed / "helix-source.json").is_file():  # converted with its untied head before (see with_lm_head)
        resolved = type(resolved)(str(headed), resolved.stem)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=True)
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            resolved.source, local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
        model, info = loaded[0], loaded[1]
        if "lm_head.weight" in info.get("missing_keys", ()) and not model.config.tie_word_embeddings:
            # The embedding cache keeps only the transformer body; this model's head is a separate tensor.
            source = with_lm_head(Path(resolved.source), cache)
            model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load causal LM {spec!r} offline (HELIX never downloads weights)") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{spec!r}: token pairing needs a fast tokenizer with offset mappings")
    return CausalLM(name=resolved.stem, model=model.eval(), tokenizer=tokenizer)


def with_lm_head(body_copy: Path, cache: Path) -> str:
    """A cached copy of a GGUF model *with* its untied LM head, converted once from the original GGUF.

    Why: :func:`helix_embeddings.causal_lm_models.convert_gguf` saves the transformer body only (all an
    embedder needs). Models whose head is tied to the input embeddings (SmolLM2, Gemma-3) need nothing
    more; others (e.g. Qwen2.5-0.5B's GGUF) do.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache / f"{body_copy.name}-with-head"
    marker = target / "helix-source.json"
    if marker.is_file():
        return str(target)
    origin = json.loads((body_copy / "helix-source.json").read_text(encoding="utf-8")).get("gguf", "")
    gguf = Path(origin)
    if not gguf.is_file():
        raise ValueError(f"{body_copy} has no LM head and its GGUF {origin!r} is gone; convert it again")
    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model.hf_quantizer = None  # every weight is plain float32 already; transformers refuses to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "helix-source.json").write_text(json.dumps({"gguf": str(gguf), "head": True}), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def load_tokenizer(spec: str, cache_dir: Path | None = None) -> Any:
    """Only the (fast) tokenizer of a causal LM spec: tokenizer metrics need no weights in memory."""
    from transformers import AutoTokenizer

    parsed = parse_spec(spec)
    if parsed.backend != "causal-lm":
        raise ValueError(f"{spec!r} is not a causal LM spec (expected causal-lm:<name>, smollm2 or gemma3)")
    resolved = resolve(parsed.name, model_cache_dir(cache_dir))
    return AutoTokenizer.from_pretrained(resolved.source, local_files_only=True)
