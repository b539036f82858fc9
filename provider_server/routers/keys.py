"""Key registration. Alignment and inference keys are registered separately and expire; only public
material is registered (the client's CKKS secret key never leaves it). Alignment keys carry Galois
keys for the packing tree's automorphisms, and for nothing else."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from helix_web.errors import ApiError, not_found
from helix_web.frames import read_frame
from helix_he.context import CiphertextError, he_context
from helix_he.keys import MAX_GALOIS_KEY_BYTES, load_galois_keys, load_public_key
from helix_he.packing import MAX_STRIDE_BITS, trace_galois_elements
from shared_protocol.messages import KeyInfo, KeyPurpose, KeyRegistrationHeader

from ..db import iso, parse_dt, utcnow
from ..deps import State

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_info(row: dict[str, Any]) -> KeyInfo:
    return KeyInfo(key_id=row["key_id"], client_name=row["client_name"], purpose=KeyPurpose(row["purpose"]),
                   parameter_set=row["parameter_set"], fingerprint=row["fingerprint"],
                   galois_elements=list(row.get("galois_elements") or []),
                   created_at=parse_dt(row["created_at"]), expires_at=parse_dt(row["expires_at"]))


def _expected_elements(parameter_set: str, purpose: KeyPurpose, elements: list[int]) -> None:
    if purpose == KeyPurpose.inference:
        if elements:
            raise ApiError(422, "invalid_galois_elements", "inference keys carry no Galois keys")
        return
    n = he_context(parameter_set).n
    expected = trace_galois_elements(n, len(elements))
    if not 1 <= len(elements) <= MAX_STRIDE_BITS or elements != expected:
        raise ApiError(422, "invalid_galois_elements",
                       f"alignment keys carry Galois keys for 1 + N/2^i, i < k, 1 <= k <= {MAX_STRIDE_BITS}, in "
                       f"that order (k=4: {trace_galois_elements(n, 4)}); got {elements}")


@router.post("", response_model=KeyInfo, status_code=201)
async def register_key(request: Request, state: State) -> KeyInfo:
    header, blobs = await read_frame(request, KeyRegistrationHeader, max_blobs=2, max_blob_bytes=MAX_GALOIS_KEY_BYTES)
    s = state.settings
    if header.parameter_set not in s.parameter_sets:
        raise ApiError(422, "parameter_set_not_accepted",
                       f"parameter set {header.parameter_set!r} is not accepted; accepted: {s.parameter_sets}")
    _expected_elements(header.parameter_set, header.purpose, header.galois_elements)
    want = 2 if header.galois_elements else 1
    if len(blobs) != want:
        raise ApiError(400, "malformed_frame", "this key registration carries exactly "
                       + ("two blobs: the public key and the Galois keys" if want == 2 else "one blob: the public key")
                       + f"; got {len(blobs)}")
    try:
        await run_in_threadpool(load_public_key, header.parameter_set, blobs[0])
    except CiphertextError as exc:
        raise ApiError(422, "invalid_public_key", str(exc)) from None
    if want == 2:
        try:
            await run_in_threadpool(load_galois_keys, header.parameter_set, blobs[1], header.galois_elements)
        except CiphertextError as exc:
            raise ApiError(422, "invalid_galois_keys", str(exc)) from None
    default_ttl = s.inference_key_ttl_seconds if header.purpose == KeyPurpose.inference else s.alignment_key_ttl_seconds
    ttl = min(header.ttl_seconds or default_ttl, s.max_key_ttl_seconds)
    created = utcnow()
    row = {
        "key_id": "k_" + secrets.token_hex(12), "client_name": header.client_name, "purpose": header.purpose.value,
        "parameter_set": header.parameter_set, "fingerprint": hashlib.sha256(blobs[0]).hexdigest(),
        "created_at": iso(created), "expires_at": iso(created + timedelta(seconds=ttl)),
        "public_key_blob": state.blobs.put(blobs[0], ".pk"),
        "galois_keys_blob": state.blobs.put(blobs[1], ".gk") if want == 2 else None,
        "galois_elements": list(header.galois_elements),
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
