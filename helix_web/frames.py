"""Reading framed binary request bodies in FastAPI handlers, with 4xx errors that name the problem."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from shared_protocol.framing import FRAME_MEDIA_TYPE, FrameError, decode_frame, encode_frame

from .errors import ApiError

M = TypeVar("M", bound=BaseModel)


async def read_frame(
    request: Request, header_model: type[M], *, max_blobs: int, max_blob_bytes: int
) -> tuple[M, list[bytes]]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != FRAME_MEDIA_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send the body as {FRAME_MEDIA_TYPE}, not {ctype or 'nothing'}")
    body = await request.body()
    try:
        return decode_frame(body, header_model, max_blobs=max_blobs, max_blob_bytes=max_blob_bytes)
    except FrameError as exc:
        raise ApiError(400, "malformed_frame", str(exc)) from None


def frame_response(header: BaseModel, blobs: list[bytes]) -> Response:
    return Response(content=encode_frame(header, blobs), media_type=FRAME_MEDIA_TYPE)
