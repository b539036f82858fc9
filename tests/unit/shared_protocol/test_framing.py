from __future__ import annotations

import pytest

from shared_protocol.framing import FrameError, decode_frame, encode_frame
from shared_protocol.messages import ClassifyHeader

HEADER = ClassifyHeader(head_id="sst2", key_id="k_1", num_queries=2, query_scale_bits=40)


def decode(data: bytes, **kw: int) -> tuple[ClassifyHeader, list[bytes]]:
    limits = {"max_blobs": 4, "max_blob_bytes": 100} | kw
    return decode_frame(data, ClassifyHeader, **limits)


def test_round_trip() -> None:
    blobs = [b"abc", b"", b"\x00" * 100]
    header, out = decode(encode_frame(HEADER, blobs))
    assert header == HEADER
    assert out == blobs


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x09" + b[5:], "version"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:12], "truncated"),
        (lambda b: b + b"!", "trailing"),
    ],
)
def test_malformed_frames_are_named(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameError, match=message):
        decode(mutate(encode_frame(HEADER, [b"abc", b"defg"])))


def test_limits_are_checked_before_reading() -> None:
    with pytest.raises(FrameError, match="limit is 1"):
        decode(encode_frame(HEADER, [b"a", b"b"]), max_blobs=1)
    with pytest.raises(FrameError, match="limit is 3"):
        decode(encode_frame(HEADER, [b"abcd"]), max_blob_bytes=3)


def test_invalid_header_is_rejected() -> None:
    data = encode_frame(HEADER, [])
    bad = data.replace(b'"query_scale_bits":40', b'"query_scale_bits":99')
    with pytest.raises(FrameError, match="invalid frame header"):
        decode(bad)
