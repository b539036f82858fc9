"""Binary frames: one JSON header (a pydantic model) plus a list of opaque blobs (ciphertexts/keys).

Why not JSON with base64: ciphertexts are 100-300 KB each, base64 adds a third and a copy; why not
pickle: a peer must never be able to run code in our process. Layout (little-endian):

    b"HLXF" | u8 version | u32 header_len | header JSON | u32 count | (u32 len | bytes) * count

Every length is checked against explicit limits *before* allocation, so a hostile frame cannot
make us read or allocate more than the caller allowed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError

FRAME_MAGIC = b"HLXF"
FRAME_VERSION = 1
FRAME_MEDIA_TYPE = "application/vnd.helix.frame"
_U32 = struct.Struct("<I")

M = TypeVar("M", bound=BaseModel)


class FrameError(ValueError):
    """The frame is malformed, truncated or over a limit; the message says which."""


def encode_frame(header: BaseModel, blobs: Sequence[bytes] = ()) -> bytes:
    head = header.model_dump_json().encode()
    parts = [FRAME_MAGIC, bytes([FRAME_VERSION]), _U32.pack(len(head)), head, _U32.pack(len(blobs))]
    for blob in blobs:
        parts.append(_U32.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def decode_frame(
    data: bytes,
    header_model: type[M],
    *,
    max_blobs: int,
    max_blob_bytes: int,
    max_header_bytes: int = 64 * 1024,
) -> tuple[M, list[bytes]]:
    view = memoryview(data)
    if len(view) < 9 or bytes(view[:4]) != FRAME_MAGIC:
        raise FrameError("body is not a HELIX frame (bad magic); send application/vnd.helix.frame")
    if view[4] != FRAME_VERSION:
        raise FrameError(f"unsupported frame version {view[4]}, expected {FRAME_VERSION}")
    (hlen,) = _U32.unpack_from(view, 5)
    if hlen > max_header_bytes:
        raise FrameError(f"frame header of {hlen} bytes exceeds {max_header_bytes}")
    pos = 9
    if pos + hlen + 4 > len(view):
        raise FrameError("frame is truncated inside its header")
    try:
        header = header_model.model_validate_json(bytes(view[pos : pos + hlen]))
    except ValidationError as exc:
        raise FrameError(f"invalid frame header: {exc.errors(include_url=False)}") from None
    pos += hlen
    (count,) = _U32.unpack_from(view, pos)
    pos += 4
    if count > max_blobs:
        raise FrameError(f"frame carries {count} blobs, the limit is {max_blobs}")
    blobs: list[bytes] = []
    for i in range(count):
        if pos + 4 > len(view):
            raise FrameError(f"frame is truncated before blob {i}")
        (blen,) = _U32.unpack_from(view, pos)
        pos += 4
        if blen > max_blob_bytes:
            raise FrameError(f"blob {i} has {blen} bytes, the limit is {max_blob_bytes}")
        if pos + blen > len(view):
            raise FrameError(f"frame is truncated inside blob {i}")
        blobs.append(bytes(view[pos : pos + blen]))
        pos += blen
    if pos != len(view):
        raise FrameError(f"{len(view) - pos} unexpected trailing bytes after the last blob")
    return header, blobs
