"""The inference-only set `ckks-n4096-q47`: queries under one 47-bit prime, replies switched down to 2^29.

What must hold: the logits are as precise as the default set's target (max abs error <= 1e-4) for logits
within the set's headroom (|z| < 2^7), one query plus one reply stays under 40 kB, a reply still carries
nothing but its outputs, the switched c1 is uniform, and malformed replies are refused."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.linear_head import (
    EncryptedLinearHead,
    EncryptedRankingHead,
    LogitsShape,
    decrypt_batch_logits,
    decrypt_logits,
    decrypt_ranking_differences,
    encrypt_batch,
    encrypt_queries,
    encrypted_linear_head,
    encrypted_linear_head_batch,
    ranking_from_differences,
)
from helix_he.params import get_parameter_set
from helix_he.rlwe import CompactCiphertextError, ReplyCiphertext

PSET = "ckks-n4096-q47"
SCALE_BITS = get_parameter_set(PSET).query_scale_bits


@pytest.fixture(scope="module")
def small_keys() -> ClientKeys:
    return ClientKeys.generate(PSET)


@pytest.fixture(scope="module")
def small_rr(small_keys: ClientKeys) -> Rerandomizer:
    return Rerandomizer(small_keys.he, small_keys.public_key())


def run(keys: ClientKeys, rr: Rerandomizer, head: EncryptedLinearHead, x: np.ndarray) -> list[list[bytes]]:
    queries = encrypt_queries(keys, x, head.layout)
    return encrypted_linear_head(head, queries, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=SCALE_BITS)


@pytest.mark.parametrize("d,k,bias", [(384, 4, 1.0), (768, 5, 1.0), (384, 14, 1.0), (1024, 4, 100.0)])
def test_logits_meet_the_precision_target(
    small_keys: ClientKeys, small_rr: Rerandomizer, d: int, k: int, bias: float
) -> None:
    """Unit-norm queries (sentence embeddings and their maps are about that) and weights of norm ~sqrt(d) per
    class: the error is ~||x|| 2^-16 (weights rounded) plus ~||W|| 2^-23 (query noise times weights) plus
    the switch's rounding; logits anywhere within the headroom, here up to ~100."""
    rng = np.random.default_rng(d * k)
    x = rng.normal(size=(8, d)) / np.sqrt(d)
    w, b = rng.normal(size=(d, k)), rng.normal(size=k) * bias
    z = x @ w + b
    assert np.abs(z).max() < 2**7
    head = EncryptedLinearHead(small_keys.he, w, b)
    replies = run(small_keys, small_rr, head, x)
    logits = decrypt_logits(small_keys, LogitsShape.of(head.layout, len(x)), [r for q in replies for r in q])
    assert np.max(np.abs(logits - z)) < 1e-4


def test_one_query_and_its_reply_fit_in_40_kB(small_keys: ClientKeys, small_rr: Rerandomizer) -> None:
    rng = np.random.default_rng(1)
    for d, k in [(384, 4), (768, 4), (2048, 2), (4096, 1)]:
        head = EncryptedLinearHead(small_keys.he, rng.normal(size=(d, k)), np.zeros(k))
        query = encrypt_queries(small_keys, rng.normal(size=(1, d)) / np.sqrt(d), head.layout)
        replies = encrypted_linear_head(
            head, query, small_rr, max_ciphertext_bytes=1 << 20, query_scale_bits=SCALE_BITS
        )[0]
        assert len(replies) == 1
        assert len(query[0]) + len(replies[0]) <= 40_000, (d, k, len(query[0]), len(replies[0]))


def test_a_switched_reply_carries_its_outputs_only_and_a_uniform_c1(
    small_keys: ClientKeys, small_rr: Rerandomizer
) -> None:
    he = small_keys.he
    q = he.output_level.primes[0]
    rng = np.random.default_rng(2)
    d, k = 384, 4
    head = EncryptedLinearHead(he, rng.normal(size=(d, k)), rng.normal(size=k))
    blob = run(small_keys, small_rr, head, rng.normal(size=(1, d)) / np.sqrt(d))[0][0]
    pos = head.layout.output_positions(0)
    assert len(blob) == ReplyCiphertext.wire_size(q, he.n, len(pos), 29)
    with pytest.raises(CompactCiphertextError):
        small_keys.decrypt_reply(blob, np.arange(len(pos) + 1))
    reply = ReplyCiphertext.from_bytes(blob, level=0, q=q, n=he.n, count=len(pos), modulus_bits=29)
    # c1 is uniform mod 2^29: each of 8 equal bins holds 1/8 of the 4096 coefficients within 5 sigma.
    counts = np.bincount((reply.c1 >> np.uint64(26)).astype(np.int64), minlength=8)
    assert np.all(np.abs(counts - he.n / 8) < 5 * np.sqrt(he.n / 8 * 7 / 8)), counts
    # A reply in the prime's form (or with another bit width) does not parse as a switched one.
    with pytest.raises(CompactCiphertextError, match="expected"):
        ReplyCiphertext.from_bytes(blob, level=0, q=q, n=he.n, count=len(pos), modulus_bits=0)
    tampered = bytearray(blob)
    tampered[len(blob) - he.n * 29 // 8 - 1] |= 0xF0  # c0's last byte: 4 outputs x 29 bits leave 4 padding bits
    with pytest.raises(CompactCiphertextError, match="padding"):
        small_keys.decrypt_reply(bytes(tampered), pos)


def test_feature_major_batch_under_the_small_ring(small_keys: ClientKeys, small_rr: Rerandomizer) -> None:
    rng = np.random.default_rng(4)
    d, k, m = 384, 4, 1000
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    x = rng.normal(size=(m, d)) / np.sqrt(d)
    head = EncryptedLinearHead(small_keys.he, w, b)
    features = encrypt_batch(small_keys, x, head.layout)
    replies = encrypted_linear_head_batch(
        head, features, m, small_rr, max_ciphertext_bytes=1 << 20, query_scale_bits=SCALE_BITS
    )

    class Shape:
        num_queries = m
        num_classes = k

    logits = decrypt_batch_logits(small_keys, Shape(), replies)
    assert np.max(np.abs(logits - (x @ w + b))) < 1e-4


def test_ranking_under_the_small_ring_orders_the_logits(small_keys: ClientKeys, small_rr: Rerandomizer) -> None:
    rng = np.random.default_rng(5)
    d, k = 384, 4
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    x = rng.normal(size=(20, d)) / np.sqrt(d)
    head = EncryptedRankingHead(small_keys.he, w, b)
    queries = encrypt_queries(small_keys, x, head.layout)
    replies = encrypted_linear_head(head, queries, small_rr, max_ciphertext_bytes=1 << 20, query_scale_bits=SCALE_BITS)
    shape = LogitsShape.of(head.layout, len(x))
    shape = LogitsShape(shape.num_queries, k, shape.class_groups, shape.output_positions)
    diffs = decrypt_ranking_differences(small_keys, shape, [r for q in replies for r in q])
    z = x @ w + b
    clear = np.sort(z, axis=1)[:, -1] - np.sort(z, axis=1)[:, -2] > 0.01
    assert clear.mean() > 0.8
    assert np.array_equal(ranking_from_differences(diffs, k)[clear, 0], np.argmax(z, axis=1)[clear])
