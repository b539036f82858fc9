"""Exact-width packing of residues: round trips, sizes, the numpy fallback, and refusal of bad buffers."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he import bitpack
from helix_he.bitpack import BitPackError, pack_bits, packed_size, unpack_bits


@pytest.mark.parametrize("bits", [1, 7, 8, 29, 47, 60, 64])
@pytest.mark.parametrize("count", [0, 1, 5, 4096])
def test_round_trip_and_size(bits: int, count: int) -> None:
    rng = np.random.default_rng(bits * 10_000 + count)
    top = 2**bits if bits < 64 else 2**64
    values = rng.integers(0, top, size=count, dtype=np.uint64, endpoint=False)
    packed = pack_bits(values, bits)
    assert len(packed) == packed_size(count, bits) == (count * bits + 7) // 8
    assert np.array_equal(unpack_bits(packed, count, bits, "x"), values)
    # The numpy fallback writes and reads the same bytes.
    assert bitpack._pack_numpy(values, bits) == packed
    out, rest = bitpack._unpack_numpy(np.frombuffer(packed, dtype=np.uint8), count, bits)
    assert np.array_equal(out, values) and rest == 0


def test_wrong_length_and_nonzero_padding_are_refused() -> None:
    packed = pack_bits(np.array([1, 2, 3], dtype=np.uint64), 29)  # 87 bits: 11 bytes, 1 padding bit
    with pytest.raises(BitPackError, match="expected 11 bytes, got 10"):
        unpack_bits(packed[:-1], 3, 29, "reply c1")
    padded = bytearray(packed)
    padded[-1] |= 0x80  # the one padding bit
    with pytest.raises(BitPackError, match="padding bits"):
        unpack_bits(bytes(padded), 3, 29, "reply c1")
