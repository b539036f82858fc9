"""Token alignment across tokenizers and the paper's tokenizer-compatibility metrics (Appendices B.5, C).

Two models read the same text through different tokenizers, so "the hidden state of token i" of one
model has no obvious partner in the other. Pairing is by character offsets, from the fast
tokenizers' offset mappings: each token of model A is matched to the token of model B whose end
offset equals A's end offset or is the first to follow it. B's state at that token has read at
least everything A's state has read, and as little more as the tokenizations allow.

Special tokens (BOS, chat markers) have no character span: they are left out of pairing and of the
metrics, but they stay in the model input, so hidden states are those of the model's normal input.
Chat templates are not applied anywhere: both models read the same plain text, so their tokens can
be paired by position in that text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: Word-start markers of SentencePiece ("▁") and GPT-2 byte-level BPE ("Ġ", the byte 0x20).
SPACE_MARKERS = ("▁", "Ġ")


@dataclass(frozen=True)
class TokenizedText:
    """One text as a model reads it: every input id, and the character span of each non-special token."""

    text: str
    ids: list[int]
    #: positions (indices into ``ids``) of tokens that cover characters of ``text``
    positions: np.ndarray
    #: (start, end) character offsets of the tokens at ``positions``
    spans: np.ndarray


def tokenize(tokenizer: Any, text: str, max_length: int | None = None) -> TokenizedText:
    """Tokenize with the model's own special tokens (e.g. Gemma's BOS) and keep offsets of the rest."""
    enc = tokenizer(
        text,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        add_special_tokens=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    ids = [int(i) for i in enc["input_ids"]]
    special = enc["special_tokens_mask"]
    offsets = enc["offset_mapping"]
    keep = [i for i, (s, (a, b)) in enumerate(zip(special, offsets, strict=True)) if not s and b > a]
    spans = np.array([offsets[i] for i in keep], dtype=np.int64).reshape(-1, 2)
    return TokenizedText(text=text, ids=ids, positions=np.array(keep, dtype=np.int64), spans=spans)


def pair_by_end_offset(ends_a: np.ndarray, ends_b: np.ndarray) -> np.ndarray:
    """For each end offset of A, the index of B's first token ending at or after it (-1 if none).

    Offsets of a fast tokenizer never decrease along the text, so a binary search finds the partner.
    """
    ends_b = np.asarray(ends_b)
    if ends_b.size and np.any(np.diff(ends_b) < 0):
        raise ValueError("token end offsets must be non-decreasing")
    idx = np.searchsorted(ends_b, np.asarray(ends_a), side="left")
    return np.where(idx < ends_b.size, idx, -1).astype(np.int64)


def paired_positions(a: TokenizedText, b: TokenizedText) -> tuple[np.ndarray, np.ndarray]:
    """Input positions (in A's and B's ids) of the token pairs of one text, for hidden-state extraction."""
    if a.text != b.text:
        raise ValueError("paired tokenizations must be of the same text")
    match = pair_by_end_offset(a.spans[:, 1], b.spans[:, 1])
    ok = match >= 0
    return a.positions[ok], b.positions[match[ok]]


def trimmed_spans(text: str, spans: np.ndarray) -> set[tuple[int, int]]:
    """Spans with surrounding whitespace removed, so " the" in one tokenizer equals "the" in another.

    A whitespace-only token keeps its raw span (there is nothing else to compare).
    """
    out: set[tuple[int, int]] = set()
    for start, end in spans.tolist():
        s, e = start, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        out.add((s, e) if s < e else (start, end))
    return out


def exact_match_counts(a: TokenizedText, b: TokenizedText) -> tuple[int, int]:
    """(tokens of A whose trimmed span is also a token span of B, tokens of A), on one text."""
    mine = [next(iter(trimmed_spans(a.text, a.spans[i : i + 1]))) for i in range(len(a.spans))]
    theirs = trimmed_spans(b.text, b.spans)
    return sum(span in theirs for span in mine), len(mine)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table (byte-level BPE writes each byte as one printable char)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    n = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + n)
            n += 1
    return {chr(c): byte for byte, c in zip(printable, chars, strict=True)}


def is_byte_level(tokenizer: Any) -> bool:
    """True for GPT-2-style byte-level BPE (its pre-tokenizer or decoder is ByteLevel)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    parts = (backend.pre_tokenizer, backend.decoder)
    return any(p is not None and "ByteLevel" in repr(p) for p in parts)


def normalise_token(token: str, byte_level: bool) -> str:
    """The text a vocabulary entry stands for: space markers become spaces, byte-level chars bytes.

    A byte-level entry that is not valid UTF-8 on its own (part of a multi-byte character) keeps its
    raw form, so it only matches the identical raw entry of another byte-level vocabulary.
    """
    if byte_level:
        table = _byte_decoder()
        if all(ch in table for ch in token):
            try:
                return bytes(table[ch] for ch in token).decode("utf-8")
            except UnicodeDecodeError:
                return token
        return token
    return token.replace("▁", " ")


def normalised_vocab(tokenizer: Any) -> set[str]:
    """Normalised vocabulary without special tokens."""
    byte_level = is_byte_level(tokenizer)
    special = set(getattr(tokenizer, "all_special_tokens", []))
    added = set(getattr(tokenizer, "get_added_vocab", dict)())
    return {normalise_token(t, byte_level) for t in tokenizer.get_vocab() if t not in special and t not in added}


def vocab_jaccard(tokenizer_a: Any, tokenizer_b: Any) -> float:
    """|V_A ∩ V_B| / |V_A ∪ V_B| over normalised vocabularies."""
    a, b = normalised_vocab(tokenizer_a), normalised_vocab(tokenizer_b)
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass(frozen=True)
class TokenizerMetrics:
    """The paper's Appendix C metrics for one ordered pair of tokenizers on a set of texts."""

    vocab_jaccard: float
    exact_match_a_to_b: float
    exact_match_b_to_a: float
    tokens_a: int
    tokens_b: int
    texts: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def tokenizer_metrics(tokenizer_a: Any, tokenizer_b: Any, texts: Iterable[str]) -> TokenizerMetrics:
    """Vocabulary Jaccard and exact token match rate in both directions, over ``texts``."""
    hit_ab = hit_ba = n_a = n_b = n_texts = 0
    for text in texts:
        a, b = tokenize(tokenizer_a, text), tokenize(tokenizer_b, text)
        h, n = exact_match_counts(a, b)
        hit_ab, n_a = hit_ab + h, n_a + n
        h, n = exact_match_counts(b, a)
        hit_ba, n_b = hit_ba + h, n_b + n
        n_texts += 1
    return TokenizerMetrics(
        vocab_jaccard=vocab_jaccard(tokenizer_a, tokenizer_b),
        exact_match_a_to_b=hit_ab / n_a if n_a else 0.0,
        exact_match_b_to_a=hit_ba / n_b if n_b else 0.0,
        tokens_a=n_a,
        tokens_b=n_b,
        texts=n_texts,
    )


def same_vocabulary(tokenizer_a: Any, tokenizer_b: Any) -> bool:
    """True when both tokenizers map every token string to the same id (token-level stitching is possible)."""
    vocab_a: dict[str, int] = tokenizer_a.get_vocab()
    vocab_b: dict[str, int] = tokenizer_b.get_vocab()
    return vocab_a == vocab_b


def spans_text(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The substrings of ``text`` at ``spans`` (for readable test failures and reports)."""
    return [text[s:e] for s, e in spans]
