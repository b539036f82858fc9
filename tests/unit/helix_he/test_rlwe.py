"""Compact RLWE ciphertexts: the randomness both parties draw and the wire forms' validation."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as seal

from helix_he.context import he_context
from helix_he.keys import ClientKeys
from helix_he.rlwe import (
    CBD_ETA,
    CompactCiphertextError,
    ReplyCiphertext,
    SeededCiphertext,
    centered_binomial,
    expand_uniform,
    new_seed,
    ternary,
)

PSET = "ckks-n8192-q200"


def test_expand_uniform_is_deterministic_uniform_and_seed_dependent() -> None:
    he = he_context(PSET)
    primes = he.input_level.primes
    seed = new_seed()
    a = expand_uniform(seed, primes, he.n)
    assert np.array_equal(a, expand_uniform(seed, primes, he.n))  # both parties derive the same c1
    assert not np.array_equal(a[0], expand_uniform(new_seed(), primes, he.n)[0])
    for row, q in zip(a, primes, strict=False):
        assert int(row.max()) < q
        counts = np.bincount((row.astype(np.float64) / q * 16).astype(int), minlength=16)
        assert float(((counts - he.n / 16) ** 2 / (he.n / 16)).sum()) < 60
    with pytest.raises(CompactCiphertextError, match="32 bytes"):
        expand_uniform(b"short", primes, he.n)


def test_noise_distributions_have_the_documented_shape() -> None:
    e = centered_binomial(200_000)
    assert abs(e.mean()) < 0.05 and abs(e.var() - CBD_ETA / 2) < 0.2 and np.abs(e).max() <= CBD_ETA
    assert not np.array_equal(centered_binomial(64), centered_binomial(64))
    t = ternary(90_000)
    assert set(np.unique(t).tolist()) == {-1, 0, 1}
    assert np.all(np.abs(np.bincount(t + 1) / 90_000 - 1 / 3) < 0.01)


def test_native_encryption_decrypts_with_seal() -> None:
    """A compact query is a genuine SEAL ciphertext: rebuilt as one (c1 from the seed), SEAL's own
    Decryptor with the client's secret key recovers the message."""
    keys = ClientKeys.generate(PSET)
    he = keys.he
    lvl = he.output_level
    coeffs = np.zeros(he.n, dtype=np.int64)
    coeffs[:5] = [3 << 26, -(1 << 26), 7 << 25, 0, 1 << 26]
    ct = keys.encrypt_seeded(coeffs[None, :], 2.0**26)[0]
    data = np.stack([ct.c0, expand_uniform(ct.seed, lvl.primes, he.n)])  # (2, 1, N)
    template = seal.Ciphertext()
    seal.Encryptor(he.context, keys.secret_key).encrypt_zero_symmetric(list(lvl.parms_id), template)
    template.scale = 2.0**26
    sealed = he.ciphertext_with_data(template, data)
    pt = seal.Plaintext()
    seal.Decryptor(he.context, keys.secret_key).decrypt(sealed, pt)
    got = he.decode_last_level(pt)
    assert np.max(np.abs(got[:5] - coeffs[:5] / 2.0**26)) < 1e-5 and np.max(np.abs(got[5:])) < 1e-5


def test_wire_forms_round_trip_and_reject_malformed_bytes() -> None:
    he = he_context(PSET)
    lvl = he.output_level
    q = lvl.primes[0]
    rng = np.random.default_rng(0)
    ct = SeededCiphertext(lvl.index, 2.0**26, new_seed(), rng.integers(0, q, size=(1, he.n), dtype=np.uint64))
    raw = ct.to_bytes(lvl.primes)
    assert len(raw) == SeededCiphertext.wire_size(lvl.primes, he.n) == 65_592
    back = SeededCiphertext.from_bytes(raw, level=lvl.index, primes=lvl.primes, n=he.n)
    assert back.seed == ct.seed and np.array_equal(back.c0, ct.c0) and back.scale == ct.scale
    kw = dict(level=lvl.index, primes=lvl.primes, n=he.n)
    with pytest.raises(CompactCiphertextError, match="expected 65592"):
        SeededCiphertext.from_bytes(raw[:-1], **kw)
    with pytest.raises(CompactCiphertextError, match="magic"):
        SeededCiphertext.from_bytes(b"XXXX" + raw[4:], **kw)
    with pytest.raises(CompactCiphertextError, match="level"):
        SeededCiphertext.from_bytes(raw, level=lvl.index - 1, primes=lvl.primes, n=he.n)
    bad_scale = bytearray(raw)
    bad_scale[8:16] = np.float64(np.nan).tobytes()
    with pytest.raises(CompactCiphertextError, match="scale"):
        SeededCiphertext.from_bytes(bytes(bad_scale), **kw)
    reply = ReplyCiphertext(
        2.0**48, rng.integers(0, q, size=3, dtype=np.uint64), rng.integers(0, q, size=he.n, dtype=np.uint64)
    )
    rraw = reply.to_bytes(q, lvl.index)
    rb = ReplyCiphertext.from_bytes(rraw, level=lvl.index, q=q, n=he.n, count=3)
    assert np.array_equal(rb.c0, reply.c0) and np.array_equal(rb.c1, reply.c1)
    with pytest.raises(CompactCiphertextError, match="expected"):
        ReplyCiphertext.from_bytes(rraw, level=lvl.index, q=q, n=he.n, count=4)
