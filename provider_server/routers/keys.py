"""Key registration: public key material only, registered per purpose, expiring (services/keys.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from helix_he.keys import MAX_GALOIS_KEY_BYTES
from helix_web.frames import read_frame
from shared_protocol.messages import KeyInfo, KeyRegistrationHeader

from .. import views
from ..deps import Keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", response_model=KeyInfo, status_code=201)
async def register_key(request: Request, keys: Keys) -> KeyInfo:
    header, blobs = await read_frame(request, KeyRegistrationHeader, max_blobs=2, max_blob_bytes=MAX_GALOIS_KEY_BYTES)
    return views.key_info(await keys.register(header, blobs))


@router.get("/{key_id}", response_model=KeyInfo)
def get_key(key_id: str, keys: Keys) -> KeyInfo:
    return views.key_info(keys.get(key_id))


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, keys: Keys) -> None:
    keys.revoke(key_id)
