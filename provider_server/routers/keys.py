"""Key registration. Alignment and inference keys are registered separately and expire; only public
material is registered (the client's CKKS secret key never leaves it)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import tenseal.sealapi as seal
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from helix_web.errors import ApiError, not_found
from helix_web.frames import read_frame
from shared_protocol.ckks import CiphertextError, load_from_bytes, check_seal_header, he_context
from shared_protocol.messages import KeyInfo, KeyPurpose, KeyRegistrationHeader

from ..db import iso, parse_dt, utcnow
from ..deps import State

router = APIRouter(prefix="/v1/keys", tags=["keys"])
MAX_PUBLIC_KEY_BYTES = 4 * 1024 * 1024


def key_info(row: dict[str, Any]) -> KeyInfo:
    return KeyInfo(key_id=row["key_id"], client_name=row["client_name"], purpose=KeyPurpose(row["purpose"]),
                   parameter_set=row["parameter_set"], fingerprint=row["fingerprint"],
                   created_at=parse_dt(row["created_at"]), expires_at=parse_dt(row["expires_at"]))


def _check_public_key(parameter_set: str, blob: bytes) -> None:
    check_seal_header(blob, MAX_PUBLIC_KEY_BYTES)
    he = he_context(parameter_set)
    pk = seal.PublicKey()
    try:
        load_from_bytes(pk, he.context, blob)
    except (RuntimeError, ValueError) as exc:
        raise CiphertextError(f"public key is not valid for {parameter_set}: {exc}") from None


@router.post("", response_model=KeyInfo, status_code=201)
async def register_key(request: Request, state: State) -> KeyInfo:
    header, blobs = await read_frame(request, KeyRegistrationHeader, max_blobs=1, max_blob_bytes=MAX_PUBLIC_KEY_BYTES)
    s = state.settings
    if header.parameter_set not in s.parameter_sets:
        raise ApiError(422, "parameter_set_not_accepted",
                       f"parameter set {header.parameter_set!r} is not accepted; accepted: {s.parameter_sets}")
    if len(blobs) != 1:
        raise ApiError(400, "malformed_frame", "key registration carries exactly one blob: the public key")
    try:
        await run_in_threadpool(_check_public_key, header.parameter_set, blobs[0])
    except CiphertextError as exc:
        raise ApiError(422, "invalid_public_key", str(exc)) from None
    default_ttl = s.inference_key_ttl_seconds if header.purpose == KeyPurpose.inference else s.alignment_key_ttl_seconds
    ttl = min(header.ttl_seconds or default_ttl, s.max_key_ttl_seconds)
    created = utcnow()
    row = {
        "key_id": "k_" + secrets.token_hex(12), "client_name": header.client_name, "purpose": header.purpose.value,
        "parameter_set": header.parameter_set, "fingerprint": hashlib.sha256(blobs[0]).hexdigest(),
        "created_at": iso(created), "expires_at": iso(created + timedelta(seconds=ttl)),
        "public_key_blob": state.blobs.put(blobs[0], ".pk"),
    }
    state.repo.add_key(row)
    return key_info(dict(row, revoked=0))


@router.get("/{key_id}", response_model=KeyInfo)
def get_key(key_id: str, state: State) -> KeyInfo:
    row = state.repo.get_key(key_id)
    if row is None or row["revoked"]:
        raise not_found("key", key_id)
    return key_info(row)


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, state: State) -> None:
    if not state.repo.revoke_key(key_id):
        raise not_found("key", key_id)
