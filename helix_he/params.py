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

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

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
    )
}

DEFAULT_PARAMETER_SET = "ckks-n8192-q200"


def get_parameter_set(name: str) -> CKKSParameterSet:
    """Look up a pinned parameter set; KeyError names the unknown set and the known ones."""
    try:
        return PARAMETER_SETS[name]
    except KeyError:
        raise KeyError(f"unknown CKKS parameter set {name!r}; known: {sorted(PARAMETER_SETS)}") from None
