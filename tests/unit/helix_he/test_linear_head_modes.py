"""Output modes and the pinned query scale of the linear-head circuit, in one process: a ranking reply
decrypts to positive multiples of the pairwise logit differences, with fresh factors per reply, and
the provider evaluates nothing but queries at the pinned scale and level."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he.budget import HEAD_WEIGHT_SCALE_BITS, QUERY_SCALE_BITS, RANKING_FACTOR_BITS, ranking_factors
from helix_he.context import CiphertextError
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.linear_head import (
    EncryptedLinearHead,
    EncryptedRankingHead,
    LogitsShape,
    decrypt_logits,
    decrypt_ranking_differences,
    encrypt_batch,
    encrypt_queries,
    encrypted_linear_head,
    encrypted_linear_head_batch,
    prepare_head,
    ranking_from_differences,
    ranking_pairs,
)

MAX_BYTES = 1 << 20
FACTOR_MAX = 2.0**RANKING_FACTOR_BITS


def true_differences(z: np.ndarray) -> np.ndarray:
    return np.stack([z[:, i] - z[:, j] for i, j in ranking_pairs(z.shape[1])], axis=1)


def ranking_replies(
    keys: ClientKeys, rr: Rerandomizer, head: EncryptedRankingHead, x: np.ndarray, queries: list[bytes] | None = None
) -> np.ndarray:
    queries = encrypt_queries(keys, x, head.layout) if queries is None else queries
    replies = encrypted_linear_head(
        head, queries, rr, max_ciphertext_bytes=MAX_BYTES, query_scale_bits=QUERY_SCALE_BITS
    )
    layout_shape = LogitsShape.of(head.layout, len(queries))
    shape = LogitsShape(len(queries), head.num_classes, layout_shape.class_groups, layout_shape.output_positions)
    return decrypt_ranking_differences(keys, shape, [r for q in replies for r in q])


@pytest.mark.parametrize("d,k", [(384, 2), (384, 4), (768, 14)])
def test_ranking_replies_are_positive_multiples_of_the_pairwise_differences(
    keys: ClientKeys, rr: Rerandomizer, d: int, k: int
) -> None:
    rng = np.random.default_rng(d * k)
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    x = rng.normal(size=(4, d)) / np.sqrt(d)
    head = EncryptedRankingHead(keys.he, w, b)
    assert head.layout.k == k * (k - 1) // 2  # one output per pair
    got = ranking_replies(keys, rr, head, x)
    z = x @ w + b
    want = true_differences(z)
    # Difference weights are rounded at 2^-14 after scaling: an absolute error of ~1e-5 per difference, so
    # the factor is read to ~1e-3 relative wherever |z_i - z_j| > 0.05 (near-ties are too noisy to divide).
    clear = np.abs(want) > 0.05
    assert clear.mean() > 0.8
    ratio = got[clear] / want[clear]
    assert ratio.min() > 1.0 - 1e-3 and ratio.max() < FACTOR_MAX * (1.0 + 1e-3), ratio
    assert np.ptp(ratio) > 1.0, "every pair gets a factor of its own"
    assert np.array_equal(ranking_from_differences(got, k), np.argsort(-z, axis=1, kind="stable"))


def test_two_replies_to_the_same_query_use_different_factors(keys: ClientKeys, rr: Rerandomizer) -> None:
    rng = np.random.default_rng(7)
    d, k = 64, 3
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    x = rng.normal(size=(1, d)) / 8
    head = EncryptedRankingHead(keys.he, w, b)
    blob = encrypt_queries(keys, x, head.layout)[0]
    first, second = (ranking_replies(keys, rr, head, x, [blob]) for _ in range(2))
    want = true_differences(x @ w + b)
    assert np.all(first / want >= 1.0 - 1e-3) and np.all(second / want >= 1.0 - 1e-3)  # both positive multiples
    assert np.all(np.abs(first / second - 1.0) > 1e-6), "the same ciphertext answered twice with the same factor"
    assert np.array_equal(ranking_from_differences(first, k), ranking_from_differences(second, k))


def test_ranking_hides_the_ratio_between_two_queries(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Logits replies give x2's differences as exactly twice x1's for x2 = 2 x1 (no bias); ranking
    replies give the ratio times an unknown r2 / r1."""
    rng = np.random.default_rng(11)
    d, k = 32, 2
    w = rng.normal(size=(d, k))
    x1 = rng.normal(size=(1, d)) / 8
    x = np.vstack([x1, 2 * x1])
    head = EncryptedRankingHead(keys.he, w, np.zeros(k))
    got = ranking_replies(keys, rr, head, x)
    assert abs(got[1, 0] / got[0, 0] - 2.0) > 1e-4
    logits_head = EncryptedLinearHead(keys.he, w, np.zeros(k))
    replies = encrypted_linear_head(
        logits_head,
        encrypt_queries(keys, x, logits_head.layout),
        rr,
        max_ciphertext_bytes=MAX_BYTES,
        query_scale_bits=QUERY_SCALE_BITS,
    )
    z = decrypt_logits(keys, LogitsShape.of(logits_head.layout, 2), [r for q in replies for r in q])
    assert (z[1, 0] - z[1, 1]) / (z[0, 0] - z[0, 1]) == pytest.approx(2.0, rel=1e-4)  # the control


def test_ranking_flooding_costs_what_logits_flooding_costs(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Flooding at b bits is r * U[-2^(b-8), 2^(b-8)] at scale 2^40: 2^(b-48) per unit factor, as in
    logits mode."""
    rng = np.random.default_rng(3)
    d, k, bits = 64, 3, 36
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    x = rng.normal(size=(12, d))
    head = EncryptedRankingHead(keys.he, w, b, noise_flooding_bits=bits)
    got = ranking_replies(keys, rr, head, x)
    want = true_differences(x @ w + b)
    eps = 2.0 ** (bits - QUERY_SCALE_BITS - HEAD_WEIGHT_SCALE_BITS) * 1.01 + 1e-4
    ratio_low, ratio_high = (got / want).min(), (got / want).max()
    assert ratio_low > 1.0 - eps / np.abs(want).min() and ratio_high < FACTOR_MAX * (1.0 + eps / np.abs(want).min())
    assert np.array_equal(np.sign(got), np.sign(want))


def test_ranking_factors_are_log_uniform_on_their_range() -> None:
    r = ranking_factors(20000)
    assert r.min() >= 1.0 and r.max() < FACTOR_MAX
    logs = np.log2(r) / RANKING_FACTOR_BITS  # uniform on [0, 1)
    counts = np.bincount((logs * 8).astype(int), minlength=8)
    assert counts.min() > 2200 and counts.max() < 2800, counts  # 2500 expected per bin


def test_ranking_from_differences_counts_wins() -> None:
    pairs = ranking_pairs(3)
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    # z = (1, 3, 2): 0 < 1, 0 < 2, 1 > 2 -> order 1, 2, 0
    assert ranking_from_differences(np.array([[-5.0, -0.1, 40.0]]), 3).tolist() == [[1, 2, 0]]
    # an exact tie wins for neither; equal counts keep the class order
    assert ranking_from_differences(np.array([[0.0, 1.0, 1.0]]), 3).tolist() == [[0, 1, 2]]


def test_prepare_head_by_mode(keys: ClientKeys) -> None:
    w, b = np.ones((8, 3)), np.zeros(3)
    assert isinstance(prepare_head(keys.he, w, b, output_mode="logits"), EncryptedLinearHead)
    assert isinstance(prepare_head(keys.he, w, b, output_mode="ranking"), EncryptedRankingHead)
    with pytest.raises(ValueError, match="unknown output mode"):
        prepare_head(keys.he, w, b, output_mode="probabilities")
    with pytest.raises(ValueError, match="at least two classes"):
        EncryptedRankingHead(keys.he, np.ones((8, 1)), np.zeros(1))


def test_decrypt_refuses_a_header_whose_groups_do_not_cover_the_outputs(keys: ClientKeys, rr: Rerandomizer) -> None:
    head = EncryptedLinearHead(keys.he, np.eye(8)[:, :2], np.zeros(2))
    replies = encrypted_linear_head(
        head,
        encrypt_queries(keys, np.ones((1, 8)), head.layout),
        rr,
        max_ciphertext_bytes=MAX_BYTES,
        query_scale_bits=26,
    )
    shape = LogitsShape.of(head.layout, 1)
    with pytest.raises(ValueError, match="cover"):
        decrypt_logits(keys, LogitsShape(1, 3, shape.class_groups, shape.output_positions), replies[0])


# ----------------------------------------------------------------------------- the pinned query scale


def scaled_query(keys: ClientKeys, head: EncryptedLinearHead, x: np.ndarray, bits: int) -> bytes:
    """An honest-format query encoded at 2^bits instead of the pinned scale (the scaled-query attack)."""
    scale = 2.0**bits
    ct = keys.encrypt_seeded(head.layout.query_coefficients(x, scale), scale)[0]
    return ct.to_bytes(keys.he.output_level.primes)


@pytest.mark.parametrize("mode", ["logits", "ranking"])
def test_only_the_pinned_query_scale_is_evaluated(keys: ClientKeys, rr: Rerandomizer, mode: str) -> None:
    head = prepare_head(keys.he, np.eye(8)[:, :2], np.zeros(2), output_mode=mode)
    assert isinstance(head, EncryptedLinearHead | EncryptedRankingHead)
    x = np.ones((1, 8))
    pinned = encrypt_queries(keys, x, head.layout)[0]
    for declared, blob, words in (
        (30, scaled_query(keys, head, x, 30), "2^30"),  # declared and actual agree, but are not pinned
        (QUERY_SCALE_BITS, scaled_query(keys, head, x, 30), "2^30.00"),  # declared pinned, actually scaled
        (36, pinned, "2^36"),  # declared wrong
        (QUERY_SCALE_BITS, scaled_query(keys, head, x, 20), "2^20.00"),
    ):
        with pytest.raises(CiphertextError, match="pinned") as err:
            encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=MAX_BYTES, query_scale_bits=declared)
        assert words in str(err.value)
    encrypted_linear_head(head, [pinned], rr, max_ciphertext_bytes=MAX_BYTES, query_scale_bits=QUERY_SCALE_BITS)


def test_a_batch_at_another_scale_is_refused(keys: ClientKeys, rr: Rerandomizer) -> None:
    head = EncryptedLinearHead(keys.he, np.ones((8, 2)), np.zeros(2))
    x = np.ones((5, 8))
    scale = 2.0**34
    scaled = [
        ct.to_bytes(keys.he.output_level.primes)
        for ct in keys.encrypt_seeded(head.layout.batch_coefficients(x, scale), scale)
    ]
    for declared in (34, QUERY_SCALE_BITS):
        with pytest.raises(CiphertextError, match="pinned"):
            encrypted_linear_head_batch(head, scaled, 5, rr, max_ciphertext_bytes=MAX_BYTES, query_scale_bits=declared)
    with pytest.raises(CiphertextError, match="pinned"):
        encrypted_linear_head_batch(
            head, encrypt_batch(keys, x, head.layout), 5, rr, max_ciphertext_bytes=MAX_BYTES, query_scale_bits=34
        )
