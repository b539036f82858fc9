"""The provider's circuits end to end in one process: correctness, reply hygiene, noise flooding."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he.budget import HEAD_WEIGHT_SCALE_BITS, QUERY_SCALE_BITS
from helix_he.context import CiphertextError
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.linear_head import (
    EncryptedLinearHead,
    LogitsShape,
    decrypt_batch_logits,
    decrypt_logits,
    encrypt_batch,
    encrypt_queries,
    encrypted_linear_head,
    encrypted_linear_head_batch,
)
from helix_he.modmath import mulmod
from helix_he.rlwe import CompactCiphertextError, ReplyCiphertext, SeededCiphertext, expand_uniform

PSET = "ckks-n8192-q200"


def reply_header(head: EncryptedLinearHead, n: int) -> LogitsShape:
    return LogitsShape.of(head.layout, n)


@pytest.mark.parametrize("d,k", [(384, 2), (384, 4), (768, 14), (3072, 4)])
def test_encrypted_logits_match_plaintext(keys: ClientKeys, rr: Rerandomizer, d: int, k: int) -> None:
    rng = np.random.default_rng(d + k)
    x = rng.normal(size=(3, d)) / np.sqrt(d)
    w, b = rng.normal(size=(d, k)), rng.normal(size=k)
    head = EncryptedLinearHead(keys.he, w, b)
    queries = encrypt_queries(keys, x, head.layout)
    replies = encrypted_linear_head(head, queries, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)
    logits = decrypt_logits(keys, reply_header(head, 3), [r for q in replies for r in q])
    assert np.max(np.abs(logits - (x @ w + b))) < 1e-4  # the precision target
    assert head.layout.ciphertexts_per_query == -(-k // (keys.he.n // d))


def test_reply_carries_the_logits_and_nothing_else(keys: ClientKeys, rr: Rerandomizer) -> None:
    """Decrypt the whole reply: it holds exactly the k output coefficients (c0 is sent only there,
    so no other coefficient of the product x*W can be decrypted at all), the outputs are exact, and
    the one full polynomial, c1, is uniform mod q rather than the client-computable product a*W."""
    rng = np.random.default_rng(0)
    d, k = 384, 4
    w, b = rng.normal(size=(d, k)) / np.sqrt(d), rng.normal(size=k)
    x = rng.normal(size=(1, d))
    head = EncryptedLinearHead(keys.he, w, b)
    query = encrypt_queries(keys, x, head.layout)
    blob = encrypted_linear_head(head, query, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)[0][0]
    he, q = keys.he, keys.he.output_level.primes[0]
    pos = head.layout.output_positions(0)
    assert len(blob) == ReplyCiphertext.wire_size(q, he.n, len(pos))  # k coefficients of c0 plus c1
    with pytest.raises(CompactCiphertextError):  # nor does it parse as carrying more outputs
        keys.decrypt_reply(blob, np.arange(len(pos) + 1))
    assert np.max(np.abs(keys.decrypt_reply(blob, pos) - (x @ w + b)[0])) < 1e-5
    reply = ReplyCiphertext.from_bytes(blob, level=he.output_level.index, q=q, n=he.n, count=len(pos))
    # Without re-randomisation c1 would be a*W (a: the client's own seeded polynomial).
    seeded = SeededCiphertext.from_bytes(query[0], level=he.output_level.index, primes=(q,), n=he.n)
    a = expand_uniform(seeded.seed, (q,), he.n)[0]
    w_ntt = he.coeffs_to_ntt(head.layout.weight_coefficients(w, head.weight_scale), he.output_level)[0, 0]
    assert np.mean(reply.c1 == mulmod(a, w_ntt, q)) < 0.01
    assert_uniform(reply.c1, q)


def assert_uniform(residues: np.ndarray, q: int, bins: int = 16) -> None:
    counts = np.bincount((residues.astype(np.float64) / q * bins).astype(int).clip(0, bins - 1), minlength=bins)
    expected = len(residues) / bins
    assert float(((counts - expected) ** 2 / expected).sum()) < 60  # chi-square, 15 dof: p ~ 1e-7


def test_same_query_twice_gives_fresh_replies(keys: ClientKeys, rr: Rerandomizer) -> None:
    head = EncryptedLinearHead(keys.he, np.eye(16)[:, :2], np.zeros(2))
    blob = encrypt_queries(keys, np.ones((1, 16)), head.layout)[0]
    r1 = encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)[0][0]
    r2 = encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)[0][0]
    pos = head.layout.output_positions(0)
    assert np.allclose(keys.decrypt_reply(r1, pos), keys.decrypt_reply(r2, pos), atol=1e-6)  # same logits
    he, q = keys.he, keys.he.output_level.primes[0]
    c1a, c1b = (ReplyCiphertext.from_bytes(r, level=he.output_level.index, q=q, n=he.n, count=2).c1 for r in (r1, r2))
    assert np.mean(c1a == c1b) < 0.01  # a fresh encryption of zero in each


def test_noise_flooding_costs_the_documented_precision(keys: ClientKeys, rr: Rerandomizer) -> None:
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(64, 3)), rng.normal(size=3)
    x = rng.normal(size=(20, 64))
    bits = 36
    head = EncryptedLinearHead(keys.he, w, b, noise_flooding_bits=bits)
    replies = encrypted_linear_head(
        head, encrypt_queries(keys, x, head.layout), rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS
    )
    logits = decrypt_logits(keys, reply_header(head, 20), [r for q in replies for r in q])
    err = np.abs(logits - (x @ w + b))
    out_bits = QUERY_SCALE_BITS + HEAD_WEIGHT_SCALE_BITS
    assert err.max() <= 2.0 ** (bits - out_bits) * 1.01  # at most 2^(bits - 48): the output scale is 2^48
    assert err.max() > 2.0 ** (bits - out_bits) / 8  # and it really is there


def test_wrong_scale_and_malformed_queries_are_rejected(keys: ClientKeys, rr: Rerandomizer) -> None:
    head = EncryptedLinearHead(keys.he, np.eye(8)[:, :2], np.zeros(2))
    blob = encrypt_queries(keys, np.ones((1, 8)), head.layout)[0]
    with pytest.raises(CiphertextError, match="scale"):
        encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=30)
    with pytest.raises(CiphertextError, match="bytes"):
        encrypted_linear_head(head, [blob[:-1]], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)
    with pytest.raises(CiphertextError, match="exceeds the limit"):
        encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=1000, query_scale_bits=QUERY_SCALE_BITS)
    bad = bytearray(blob)
    bad[-8:] = b"\xff" * 8  # a residue >= q
    with pytest.raises(CiphertextError, match="not below its prime"):
        encrypted_linear_head(head, [bytes(bad)], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS)


def test_without_the_native_kernel_results_are_identical(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The numpy fallback (machines without a C compiler) runs the same circuits to the same result."""
    import subprocess
    import sys

    script = tmp_path / "fallback.py"
    script.write_text(
        "import numpy as np, tenseal.sealapi as seal\n"
        "from helix_he import modmath\n"
        "assert modmath._KERNEL is None\n"
        "from helix_he.keys import ClientKeys\n"
        "from helix_he.keys import Rerandomizer\n"
        "from helix_he.linear_head import EncryptedLinearHead, encrypted_linear_head, encrypt_queries\n"
        "from helix_he.packing import CrossCovarianceLayout\n"
        "from helix_he.cross_covariance import PackedResultShape\n"
        "k = ClientKeys.generate('ckks-n8192-q200'); he = k.he\n"
        "pk = seal.PublicKey(); seal.KeyGenerator(he.context, k.secret_key).create_public_key(pk); "
        "rr = Rerandomizer(he, pk)\n"
        "rng = np.random.default_rng(0); x = rng.uniform(-1, 1, (40, 8)); y = rng.normal(size=(40, 3))\n"
        "from helix_he.cross_covariance import encrypted_cross_covariance, encrypt_alignment_data, "
        "decrypt_cross_covariance\n"
        "from helix_he.context import load_from_bytes\n"
        "lay = CrossCovarianceLayout(he.n, 8, 40, 2); "
        "blobs = encrypt_alignment_data(k, x, lay, 0, lay.num_ciphertexts)\n"
        "gk = seal.GaloisKeys(); load_from_bytes(gk, he.context, k.galois_key_bytes(2))\n"
        "cols, s = encrypted_cross_covariance(he, lay, "
        "lambda c: he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=1 << 21), "
        "y, range(1), rr, gk, y_scale_bits=20)\n"
        "h = PackedResultShape.of(lay, 3)\n"
        "assert np.abs(decrypt_cross_covariance(k, h, cols) - x.T @ y).max() < 1e-5\n"
        "head_w = rng.normal(size=(8, 2)); head = EncryptedLinearHead(he, head_w, np.zeros(2))\n"
        "r = encrypted_linear_head(head, encrypt_queries(k, x[:1], head.layout), rr, "
        "max_ciphertext_bytes=1 << 20, query_scale_bits=26)\n"
        "assert np.abs(k.decrypt_reply(r[0][0], head.layout.output_positions(0)) - x[:1] @ head_w).max() < 1e-5\n"
        "k4 = ClientKeys.generate('ckks-n4096-q47'); rr4 = Rerandomizer(k4.he, k4.public_key())\n"
        "head4 = EncryptedLinearHead(k4.he, head_w, np.zeros(2))\n"
        "r4 = encrypted_linear_head(head4, encrypt_queries(k4, x[:1], head4.layout), rr4, "
        "max_ciphertext_bytes=1 << 20, query_scale_bits=23)\n"
        "assert np.abs(k4.decrypt_reply(r4[0][0], head4.layout.output_positions(0)) - x[:1] @ head_w).max() < 1e-4\n"
        "print('ok')\n"
    )
    env = dict(__import__("os").environ, HELIX_DISABLE_NATIVE="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_feature_major_batch_matches_plaintext_and_carries_only_the_batch(keys: ClientKeys, rr: Rerandomizer) -> None:
    """d ciphertexts in, k out; coefficient t of reply j is logit j of query t, and a reply holds c0
    only at the batch's coefficients [0, m)."""
    rng = np.random.default_rng(21)
    d, k, m = 64, 3, 300
    w, b = rng.normal(size=(d, k)) / 4, rng.normal(size=k)
    x = rng.normal(size=(m, d)) / 8
    head = EncryptedLinearHead(keys.he, w, b)
    features = encrypt_batch(keys, x, head.layout)
    assert len(features) == d
    replies = encrypted_linear_head_batch(
        head, features, m, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS
    )
    he, q = keys.he, keys.he.output_level.primes[0]
    assert [len(r) for r in replies] == [ReplyCiphertext.wire_size(q, he.n, m)] * k
    logits = decrypt_batch_logits(keys, LogitsShape(m, k, (), ()), replies)
    assert np.max(np.abs(logits - (x @ w + b))) < 1e-4
    for r in replies:
        assert_uniform(ReplyCiphertext.from_bytes(r, level=he.output_level.index, q=q, n=he.n, count=m).c1, q)


def test_feature_major_batch_rejects_wrong_shapes(keys: ClientKeys, rr: Rerandomizer) -> None:
    head = EncryptedLinearHead(keys.he, np.ones((8, 2)), np.zeros(2))
    features = encrypt_batch(keys, np.ones((5, 8)), head.layout)
    with pytest.raises(CiphertextError, match="8 feature ciphertexts, got 7"):
        encrypted_linear_head_batch(
            head, features[:7], 5, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS
        )
    with pytest.raises(CiphertextError, match="1 to 8192 queries"):
        encrypted_linear_head_batch(
            head, features, 9000, rr, max_ciphertext_bytes=1 << 20, query_scale_bits=QUERY_SCALE_BITS
        )
    with pytest.raises(ValueError, match="1 to 8192 queries"):
        encrypt_batch(keys, np.ones((8193, 8)), head.layout)
