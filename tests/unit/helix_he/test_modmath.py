"""Exact modular arithmetic and the SEAL-ordered NTT (native kernel and numpy reference)."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as seal

from helix_he import modmath
from helix_he.context import coeffs_to_slots, he_context

PSET = "ckks-n8192-q200"


def test_mulmod_matches_python_integers() -> None:
    rng = np.random.default_rng(1)
    he = he_context(PSET)
    for q in he.levels[0].primes:
        a = rng.integers(0, q, size=2000, dtype=np.uint64)
        b = rng.integers(0, q, size=2000, dtype=np.uint64)
        got = modmath.mulmod(a, b, q)
        want = np.array([int(x) * int(y) % q for x, y in zip(a, b, strict=False)], dtype=np.uint64)
        assert np.array_equal(got, want)


def test_residue_helpers_round_trip_signed_values() -> None:
    q = he_context(PSET).levels[0].primes[0]
    v = np.array([0, 1, -1, 2**50, -(2**50), q // 2 - 1, -(q // 2) + 1], dtype=np.int64)
    assert np.array_equal(modmath.centered(modmath.to_residues(v, q), q), v)
    big = np.array([3 * q + 5, -3 * q - 5], dtype=object).astype(np.int64)
    assert np.array_equal(modmath.to_residues(big, q), np.array([5, q - 5], dtype=np.uint64))


@pytest.mark.parametrize("prime_index", [0, 1, 2])
def test_ntt_inverse_round_trip_and_native_matches_numpy(prime_index: int) -> None:
    he = he_context(PSET)
    q = he.levels[0].primes[prime_index]
    ntt = he.ntt(q)
    a = np.random.default_rng(prime_index).integers(0, q, size=(3, he.n), dtype=np.uint64)
    fwd = ntt.forward(a)
    assert np.array_equal(ntt.inverse(fwd), a)
    assert np.array_equal(ntt.forward_numpy(a[:1]), fwd[:1])
    assert np.array_equal(ntt.inverse_numpy(fwd[:1]), a[:1])


def test_native_kernel_is_available_here() -> None:
    """CI machines have a C compiler; without it everything still works, ~100x slower."""
    assert he_context(PSET).ntt(he_context(PSET).levels[0].primes[0]).native


def test_our_plaintexts_equal_seal_encoder_plaintexts() -> None:
    """The same small integer polynomial built by SEAL's encoder and by our NTT is bit-identical."""
    he = he_context(PSET)
    rng = np.random.default_rng(7)
    coeffs = rng.integers(-1000, 1000, size=he.n)
    scale = float(2**20)
    pt_seal = seal.Plaintext()
    he.encoder.encode(
        [complex(v) for v in coeffs_to_slots(coeffs / scale)], list(he.levels[0].parms_id), scale, pt_seal
    )
    ours = he.plaintext_from_coeffs(coeffs, he.levels[0], scale)
    assert np.array_equal(he.plaintext_residues(pt_seal), he.plaintext_residues(ours))


def test_uniform_mod_is_in_range_and_spread() -> None:
    q = he_context(PSET).output_level.primes[0]
    u = modmath.uniform_mod(q, 64000)
    assert u.max() < q
    counts = np.bincount((u.astype(np.float64) / q * 16).astype(int), minlength=16)
    expected = len(u) / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 60  # 15 degrees of freedom: p < 1e-6 for a correct generator


def test_add_sub_and_residues_match_python_integers_at_the_edges() -> None:
    from helix_he.modmath import addmod, submod, to_residues, uniform_mod

    q = 1152921504606748673
    a, b = uniform_mod(q, 5000), uniform_mod(q, 5000)
    a[:3], b[:3] = [0, q - 1, q - 1], [0, q - 1, 1]
    assert [int(v) for v in addmod(a, b, q)] == [(int(x) + int(y)) % q for x, y in zip(a, b, strict=False)]
    assert [int(v) for v in submod(a, b, q)] == [(int(x) - int(y)) % q for x, y in zip(a, b, strict=False)]
    v = np.concatenate([np.random.default_rng(1).integers(-q + 1, q, size=5000), [-q, q, -3 * q - 1, 2 * q + 5, 0, -1]])
    assert [int(r) for r in to_residues(v, q)] == [int(x) % q for x in v]


def test_switching_to_a_power_of_two_scales_and_rounds_every_residue() -> None:
    from helix_he.modmath import switch_to_power_of_two

    q = 140737488273409  # the 47-bit prime of ckks-n4096-q47
    rng = np.random.default_rng(3)
    c = rng.integers(0, q, size=10_000, dtype=np.uint64)
    got = switch_to_power_of_two(c, q, 29)
    exact = [(int(v) * 2**29 * 2 + q) // (2 * q) % 2**29 for v in c]  # round half up, in integers
    diff = (got.astype(np.int64) - np.array(exact, dtype=np.int64)) % 2**29
    assert set(np.unique(diff).tolist()) <= {0, 1, 2**29 - 1}  # float rounding moves a tie by one unit at most
    assert (diff == 0).mean() > 0.999
    assert int(got.max()) < 2**29
