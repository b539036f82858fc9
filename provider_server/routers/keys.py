"""Key challenges and key registration: public key material only, its uniform halves expanded from a
challenge the provider issued, registered per purpose, expiring (services/keys.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from helix_he.keys import MAX_GALOIS_KEY_BYTES
from helix_web.frames import read_frame
from helix_web.openapi import binary_body
from shared_protocol.framing import FRAME_MEDIA_TYPE
from shared_protocol.messages import KeyChallenge, KeyInfo, KeyRegistrationHeader

from .. import views
from ..deps import Keys, Tenant

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("/challenges", response_model=KeyChallenge, status_code=201)
def issue_challenge(tenant: Tenant, keys: Keys) -> KeyChallenge:
    challenge = keys.issue_challenge(tenant)
    return KeyChallenge(challenge_id=challenge.challenge_id, seed=challenge.seed.hex(), expires_at=challenge.expires_at)


@router.post(
    "",
    response_model=KeyInfo,
    status_code=201,
    openapi_extra=binary_body(FRAME_MEDIA_TYPE, "a frame: KeyRegistrationHeader, the public key, and Galois keys"),
)
async def register_key(request: Request, tenant: Tenant, keys: Keys) -> KeyInfo:
    header, blobs = await read_frame(request, KeyRegistrationHeader, max_blobs=2, max_blob_bytes=MAX_GALOIS_KEY_BYTES)
    return views.key_info(await keys.register(tenant, header, blobs))


@router.get("/{key_id}", response_model=KeyInfo)
def get_key(key_id: str, tenant: Tenant, keys: Keys) -> KeyInfo:
    return views.key_info(keys.get(key_id, tenant.tenant_id))


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, tenant: Tenant, keys: Keys) -> None:
    keys.revoke(key_id, tenant.tenant_id)
