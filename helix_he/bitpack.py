"""Residues packed at their exact bit width on the wire.

Why: a reply switched to a 2^29 modulus or a query under a 47-bit prime padded to whole bytes per
value wastes up to 3/32 and 1/48 of every ciphertext; at 4096 coefficients that is the difference
between a single-query round trip above and below 40 kB. Values are packed little-endian, value i
occupying bits [i*bits, (i+1)*bits) of the stream; the last byte is zero-padded, and an unpacker
refuses non-zero padding so one value sequence has exactly one encoding.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ._native import load_kernel

_KERNEL = load_kernel()
_U64P = ctypes.POINTER(ctypes.c_uint64)
_U8P = ctypes.POINTER(ctypes.c_uint8)


class BitPackError(ValueError):
    """A packed buffer has the wrong length or non-zero padding bits."""


def packed_size(count: int, bits: int) -> int:
    """Bytes of `count` values at `bits` bits each."""
    return (count * bits + 7) // 8


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack uint64 values, each below 2^bits (the caller guarantees it), at `bits` bits each."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bit width {bits} is not in [1, 64]")
    v = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    out = np.zeros(packed_size(v.size, bits), dtype=np.uint8)
    if _KERNEL is not None:
        _KERNEL.helix_pack_bits(v.ctypes.data_as(_U64P), v.size, bits, out.ctypes.data_as(_U8P))
        return out.tobytes()
    return _pack_numpy(v, bits)


def unpack_bits(data: bytes | memoryview, count: int, bits: int, what: str) -> np.ndarray:
    """`count` values of `bits` bits from exactly `packed_size(count, bits)` bytes."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bit width {bits} is not in [1, 64]")
    expected = packed_size(count, bits)
    if len(data) != expected:
        raise BitPackError(f"{what}: expected {expected} bytes, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8)
    if _KERNEL is not None:
        out = np.empty(count, dtype=np.uint64)
        raw = np.ascontiguousarray(raw)
        rest = _KERNEL.helix_unpack_bits(raw.ctypes.data_as(_U8P), count, bits, out.ctypes.data_as(_U64P))
    else:
        out, rest = _unpack_numpy(raw, count, bits)
    if rest:
        raise BitPackError(f"{what}: padding bits after the last value are not zero")
    return out


def _pack_numpy(v: np.ndarray, bits: int) -> bytes:
    stream = ((v[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little").tobytes()


def _unpack_numpy(raw: np.ndarray, count: int, bits: int) -> tuple[np.ndarray, int]:
    stream = np.unpackbits(raw, bitorder="little")
    used = stream[: count * bits].reshape(count, bits).astype(np.uint64)
    out: np.ndarray = (used << np.arange(bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return out, int(stream[count * bits :].any())
