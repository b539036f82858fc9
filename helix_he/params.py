"""Pinned CKKS parameter sets.

Why pinned: a client-supplied SEAL context can name huge parameters (N up to 131072) and exhaust the
provider's memory, and a mismatch between the parties' parameters makes every ciphertext garbage.
Both sides therefore refer to parameter sets by name only; the provider says which names it accepts
(on the wire, in its service info) and builds its own SEAL context from the table below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CKKSParameterSet:
    """One named CKKS parameter set. Security follows the HomomorphicEncryption.org table."""

    name: str
    poly_modulus_degree: int  # N, the ring dimension
    coeff_mod_bit_sizes: tuple[int, ...]  # bit sizes of the RNS primes, special prime last
    scale_bits: int  # log2 of the default encoding scale
    security_bits: int = 128
    #: The inference circuit's pinned budget (`helix_he.budget`): the client's query scale, the provider's
    #: weight scale, and, if set, the bits of the power-of-two modulus a reply is switched down to.
    query_scale_bits: int = 26
    weight_scale_bits: int = 22
    reply_modulus_bits: int | None = None
    #: Whether the alignment circuit can run (it needs a prime to rescale away and Galois keys).
    supports_alignment: bool = True

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def product_scale_bits(self) -> int:
        """log2 of a logit's scale right after the product (before any switch)."""
        return self.query_scale_bits + self.weight_scale_bits

    @property
    def data_levels(self) -> int:
        """How many primes a fresh ciphertext at the first data level carries (special prime excluded)."""
        return len(self.coeff_mod_bit_sizes) - 1


PARAMETER_SETS: dict[str, CKKSParameterSet] = {
    p.name: p
    for p in (
        # The default from the paper's setting: 200 bits <= 218, 128-bit security at N=8192.
        CKKSParameterSet(
            name="ckks-n8192-q200", poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 60), scale_bits=40
        ),
        # Twice the ring for wide embeddings (d*k up to 16384 per ciphertext); 200 bits is far below the
        # 438-bit limit at N=16384, so this is comfortably 128-bit secure.
        CKKSParameterSet(
            name="ckks-n16384-q200", poly_modulus_degree=16384, coeff_mod_bit_sizes=(60, 40, 40, 60), scale_bits=40
        ),
        # The alignment circuit at half the ring: its cost is dominated by an N x n x d_A product, so
        # half the ring is half the work. One 60-bit data prime (the alignment budget's) and a 49-bit
        # special prime for the packing tree's key switches: 109 bits, the standard's bound at N=4096.
        CKKSParameterSet(name="ckks-n4096-q109", poly_modulus_degree=4096, coeff_mod_bit_sizes=(60, 49), scale_bits=40),
        # Inference only: one 47-bit prime, far below the standard's bound (109 bits at N=4096), so
        # 128-bit secure with a wide margin; no special prime, hence no key switching, rotations or
        # alignment. The query is a seeded ciphertext under the prime (6 bytes per coefficient on the
        # wire); the reply is switched down to 2^29 before it leaves (29 bits per coefficient): one
        # query and one reply ciphertext are ~39 kB. Scales 2^23 (query) x 2^16 (weights) = 2^39
        # leave |logit| < 2^7 within q/2, and 2^39 * 2^29 / q ~ 2^21 after the switch keeps its
        # rounding (sigma ~15 at N=4096) near 7e-6 per logit. One reply carries floor(N / d) classes.
        CKKSParameterSet(
            name="ckks-n4096-q47",
            poly_modulus_degree=4096,
            coeff_mod_bit_sizes=(47,),
            scale_bits=23,
            query_scale_bits=23,
            weight_scale_bits=16,
            reply_modulus_bits=29,
            supports_alignment=False,
        ),
    )
}

DEFAULT_PARAMETER_SET = "ckks-n8192-q200"
#: What a client should register an inference key for when the head fits (d <= N): the smallest
#: round trip (about 39 kB for one query and one reply ciphertext).
DEFAULT_INFERENCE_PARAMETER_SET = "ckks-n4096-q47"


def get_parameter_set(name: str) -> CKKSParameterSet:
    """Look up a pinned parameter set; KeyError names the unknown set and the known ones."""
    try:
        return PARAMETER_SETS[name]
    except KeyError:
        raise KeyError(f"unknown CKKS parameter set {name!r}; known: {sorted(PARAMETER_SETS)}") from None
