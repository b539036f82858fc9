"""Keys whose uniform halves are expanded from a provider's challenge seed: they are still the keys
SEAL makes (they encrypt, decrypt, re-randomise and key-switch exactly as before), and the provider's
check refuses any other uniform half, down to a single residue."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tenseal.sealapi as seal

from helix_he.budget import y_scale_bits_for
from helix_he.context import CiphertextError, load_from_bytes
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data, encrypted_cross_covariance
from helix_he.keys import ClientKeys, KeySeedError, Rerandomizer, load_galois_keys, load_public_key
from helix_he.linear_head import (
    EncryptedLinearHead,
    LogitsShape,
    decrypt_logits,
    encrypt_queries,
    encrypted_linear_head,
)
from helix_he.modmath import centered, mulmod, submod
from helix_he.packing import CrossCovarianceLayout, trace_galois_elements
from helix_he.rlwe import ReplyCiphertext, SeededCiphertext, expand_uniform
from helix_he.seeded_keys import PUBLIC_KEY_SLOT, KeyBlob, key_primes, uniform_half

PSET = "ckks-n8192-q200"


@pytest.fixture(scope="module")
def seed() -> bytes:
    return os.urandom(32)


@pytest.fixture(scope="module")
def seeded_pk(keys: ClientKeys, seed: bytes) -> seal.PublicKey:
    """The public key as the provider loads it after checking it against its challenge."""
    return load_public_key(PSET, keys.public_key_bytes(seed), seed)


def test_uniform_halves_are_distinct_per_slot_and_fixed_by_the_seed(keys: ClientKeys, seed: bytes) -> None:
    he = keys.he
    slots = [PUBLIC_KEY_SLOT, (8193, 0), (8193, 1), (4097, 0)]
    halves = [uniform_half(he, seed, s) for s in slots]
    assert halves[0].shape == (len(key_primes(he)), he.n) == (4, 8192)
    for i in range(len(halves)):
        for j in range(i):
            assert np.mean(halves[i] == halves[j]) < 1e-3, (slots[i], slots[j])
    assert np.array_equal(uniform_half(he, seed, (8193, 1)), halves[2])  # deterministic
    assert not np.array_equal(uniform_half(he, os.urandom(32), PUBLIC_KEY_SLOT), halves[0])
    for i, q in enumerate(key_primes(he)):
        assert int(halves[0][i].max()) < q
    with pytest.raises(KeySeedError, match="32 bytes"):
        uniform_half(he, b"short", PUBLIC_KEY_SLOT)


def test_seeded_public_key_is_minus_a_s_plus_small_e(keys: ClientKeys, seed: bytes, seeded_pk: seal.PublicKey) -> None:
    """p1 is the seed's expansion at every key prime (the special prime too) and p0 + p1*s is
    SEAL's small key noise."""
    he = keys.he
    data = he.ciphertext_data(seeded_pk.data())
    assert np.array_equal(data[1], uniform_half(he, seed, PUBLIC_KEY_SLOT))
    for i, q in enumerate(he.levels[0].primes):
        noise = centered(he.ntt(q).inverse((data[0, i] + keys.secret_times(data[1, i], q)) % np.uint64(q)), q)
        assert 0 < int(np.abs(noise).max()) < 64


def test_seeded_public_key_encrypts_what_the_secret_key_decrypts(keys: ClientKeys, seeded_pk: seal.PublicKey) -> None:
    he = keys.he
    coeffs = np.zeros(he.n, dtype=np.int64)
    coeffs[:5] = [1 << 30, -(1 << 29), 7 << 20, 0, 123456789]
    ct = seal.Ciphertext()
    seal.Encryptor(he.context, seeded_pk).encrypt(he.plaintext_from_coeffs(coeffs, he.output_level, 2.0**30), ct)
    pt = seal.Plaintext()
    seal.Decryptor(he.context, keys.secret_key).decrypt(ct, pt)
    got = he.decode_last_level(pt) * 2.0**30
    assert np.max(np.abs(got - coeffs)) < 2**12  # public-key encryption noise only


def test_linear_head_under_a_seeded_key_matches_plaintext(keys: ClientKeys, seeded_pk: seal.PublicKey) -> None:
    rng = np.random.default_rng(3)
    d, k = 64, 5
    w, b, x = rng.normal(size=(d, k)) * 0.2, rng.normal(size=k) * 0.1, rng.uniform(-1, 1, size=(3, d))
    head = EncryptedLinearHead(keys.he, w, b)
    replies = encrypted_linear_head(
        head,
        encrypt_queries(keys, x, head.layout),
        Rerandomizer(keys.he, seeded_pk),
        max_ciphertext_bytes=1 << 20,
        query_scale_bits=26,
    )
    got = decrypt_logits(keys, LogitsShape.of(head.layout, 3), [blob for r in replies for blob in r])
    assert np.max(np.abs(got - (x @ w + b))) < 1e-4


def test_alignment_key_switching_with_seeded_galois_keys_matches_plaintext(
    keys: ClientKeys, seed: bytes, seeded_pk: seal.PublicKey
) -> None:
    he = keys.he
    rng = np.random.default_rng(12)
    x, y = rng.uniform(-1, 1, size=(200, 24)), rng.normal(size=(200, 10))
    lay = CrossCovarianceLayout.for_key(he.n, 24, 200, 4)
    gk = load_galois_keys(PSET, keys.galois_key_bytes(4, seed), trace_galois_elements(he.n, 4), seed)
    blobs = encrypt_alignment_data(keys, x, lay, 0, lay.num_ciphertexts)
    out, scale = encrypted_cross_covariance(
        he,
        lay,
        lambda c: he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=1 << 20),
        y,
        range(len(lay.result_groups(10))),
        Rerandomizer(he, seeded_pk),
        gk,
        y_scale_bits=y_scale_bits_for(y, lay.data_scale_bits),
    )

    class Header:
        feature_dim, output_columns, stride_bits, value_scale = 24, 10, lay.stride_bits, scale

    got = decrypt_cross_covariance(keys, Header(), out)
    assert np.max(np.abs(got - x.T @ y)) < 1e-5


def _flip_one_residue(blob: KeyBlob, slot: tuple[int, int], prime_index: int, position: int) -> bytes:
    data = blob.data(slot)
    q = key_primes(blob.he)[prime_index]
    data[1, prime_index, position] = (int(data[1, prime_index, position]) + 1) % q  # still a valid residue
    blob.write(slot, data)
    return blob.to_bytes()


@pytest.mark.parametrize("prime_index", [0, 3])  # a data prime and the special prime
def test_public_key_check_catches_one_changed_residue(keys: ClientKeys, seed: bytes, prime_index: int) -> None:
    pk = seal.PublicKey()
    load_from_bytes(pk, keys.he.context, keys.public_key_bytes(seed))
    forged = _flip_one_residue(KeyBlob.of_public_key(keys.he, pk), PUBLIC_KEY_SLOT, prime_index, 4321)
    load_from_bytes(seal.PublicKey(), keys.he.context, forged)  # SEAL itself is content with it
    with pytest.raises(KeySeedError, match="uniform half of the public key"):
        load_public_key(PSET, forged, seed)


def test_galois_key_check_catches_one_changed_residue(keys: ClientKeys, seed: bytes) -> None:
    elements = trace_galois_elements(keys.he.n, 2)
    good = keys.galois_key_bytes(2, seed)
    gk = seal.GaloisKeys()
    load_from_bytes(gk, keys.he.context, good)
    blob = KeyBlob.of_galois_keys(keys.he, gk)
    assert sorted(blob.slots) == sorted((e, j) for e in elements for j in range(3))
    forged = _flip_one_residue(blob, (elements[1], 2), 1, 7)
    with pytest.raises(KeySeedError, match=f"Galois element {elements[1]}, component 2"):
        load_galois_keys(PSET, forged, elements, seed)
    with pytest.raises(KeySeedError, match="not the expansion of the challenge seed"):
        load_galois_keys(PSET, good, elements, os.urandom(32))


def test_keys_built_without_or_on_another_seed_are_refused(keys: ClientKeys, seed: bytes) -> None:
    other = os.urandom(32)
    with pytest.raises(KeySeedError):
        load_public_key(PSET, keys.public_key_bytes(), seed)  # SEAL's own random a
    with pytest.raises(KeySeedError):
        load_public_key(PSET, keys.public_key_bytes(other), seed)
    elements = trace_galois_elements(keys.he.n, 1)
    with pytest.raises(KeySeedError):
        load_galois_keys(PSET, keys.galois_key_bytes(1), elements, seed)  # SEAL's seeded form
    with pytest.raises(CiphertextError, match="announced elements"):
        load_galois_keys(PSET, keys.galois_key_bytes(2, seed), elements, seed)


def test_a_zero_uniform_half_is_refused_although_seal_accepts_it(keys: ClientKeys, seed: bytes) -> None:
    """The outside test's key: both halves 0. SEAL loads it; the seed check refuses it."""
    pk = seal.PublicKey()
    load_from_bytes(pk, keys.he.context, keys.public_key_bytes(seed))
    blob = KeyBlob.of_public_key(keys.he, pk)
    blob.write(PUBLIC_KEY_SLOT, np.zeros_like(blob.data(PUBLIC_KEY_SLOT)))
    load_from_bytes(seal.PublicKey(), keys.he.context, blob.to_bytes())
    with pytest.raises(KeySeedError):
        load_public_key(PSET, blob.to_bytes(), seed)


def _reply_mask(keys: ClientKeys, rr: Rerandomizer) -> np.ndarray:
    """What re-randomisation added to a reply's c1: c1 - c1_query * W, centred coefficients mod q0
    (the client knows c1_query; W is known here to measure)."""
    he = keys.he
    q = he.output_level.primes[0]
    rng = np.random.default_rng(9)
    w = rng.normal(size=(32, 2))
    head = EncryptedLinearHead(he, w, np.zeros(2))
    blob = encrypt_queries(keys, rng.uniform(-1, 1, size=(1, 32)), head.layout)[0]
    query = SeededCiphertext.from_bytes(blob, level=he.output_level.index, primes=(q,), n=he.n)
    reply = ReplyCiphertext.from_bytes(
        encrypted_linear_head(head, [blob], rr, max_ciphertext_bytes=1 << 20, query_scale_bits=26)[0][0],
        level=he.output_level.index,
        q=q,
        n=he.n,
        count=2,
    )
    w_ntt = he.coeffs_to_ntt(head.layout.weight_coefficients(w, head.weight_scale), he.output_level)[0, 0]
    product = mulmod(expand_uniform(query.seed, (q,), he.n)[0], w_ntt, q)
    mask: np.ndarray = centered(he.ntt(q).inverse(submod(reply.c1, product, q)), q)
    return mask


def test_a_zero_key_leaves_c1_a_function_of_w_and_the_seeded_key_masks_it(
    keys: ClientKeys, seeded_pk: seal.PublicKey
) -> None:
    """Why the check exists: under the zero key SEAL accepts, a reply's c1 is (the client's seed
    polynomial) x (weights) plus small noise, so copies of one query average to W; under a key on the
    provider's seed the mask is uniform modulo q0."""
    zero = seal.PublicKey()
    blob = KeyBlob.of_public_key(keys.he, seeded_pk)
    blob.write(PUBLIC_KEY_SLOT, np.zeros_like(blob.data(PUBLIC_KEY_SLOT)))
    load_from_bytes(zero, keys.he.context, blob.to_bytes())
    leaky = _reply_mask(keys, Rerandomizer(keys.he, zero))
    assert int(np.abs(leaky).max()) <= 21  # e1 only: centred binomial, eta = 21
    masked = _reply_mask(keys, Rerandomizer(keys.he, seeded_pk)).astype(np.float64)
    q = keys.he.output_level.primes[0]
    assert np.mean(np.abs(masked) < 2.0**50) < 0.01
    assert np.std(masked) > q / 8
