"""Key registration. Alignment and inference keys are registered separately and expire; only public
material is registered (the client's CKKS secret key never leaves it). Alignment keys carry Galois
keys for the packing tree's automorphisms, and for nothing else."""
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
from shared_protocol.packing import MAX_STRIDE_BITS, trace_galois_elements

from ..db import iso, parse_dt, utcnow
from ..deps import State

router = APIRouter(prefix="/v1/keys", tags=["keys"])
MAX_PUBLIC_KEY_BYTES = 4 * 1024 * 1024
# Seven seeded Galois keys at N=8192 take ~4.9 MB (9.8 MB at N=16384).
MAX_GALOIS_KEY_BYTES = 12 * 1024 * 1024


def key_info(row: dict[str, Any]) -> KeyInfo:
    return KeyInfo(key_id=row["key_id"], client_name=row["client_name"], purpose=KeyPurpose(row["purpose"]),
                   parameter_set=row["parameter_set"], fingerprint=row["fingerprint"],
                   galois_elements=list(row.get("galois_elements") or []),
                   created_at=parse_dt(row["created_at"]), expires_at=parse_dt(row["expires_at"]))


def _load_checked(obj: Any, what: str, parameter_set: str, blob: bytes, max_bytes: int) -> Any:
    """Header and size first, then SEAL's own validation against our pinned context (never
    `unsafe_load`); a failure is a CiphertextError naming the key kind and the parameter set."""
    check_seal_header(blob, max_bytes)
    try:
        load_from_bytes(obj, he_context(parameter_set).context, blob)
    except (RuntimeError, ValueError) as exc:
        raise CiphertextError(f"{what}: not valid for {parameter_set}: {exc}") from None
    return obj


def _check_public_key(parameter_set: str, blob: bytes) -> None:
    _load_checked(seal.PublicKey(), "public key", parameter_set, blob, MAX_PUBLIC_KEY_BYTES)


def _check_galois_keys(parameter_set: str, elements: list[int], blob: bytes) -> None:
    """The key set must be exactly the announced elements, no more (each key is ~0.7-1.4 MB of memory)."""
    keys = _load_checked(seal.GaloisKeys(), "Galois keys", parameter_set, blob, MAX_GALOIS_KEY_BYTES)
    if keys.size() != len(elements) or not all(keys.has_key(e) for e in elements):
        raise CiphertextError(f"the Galois keys do not match the announced elements {elements}")


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
        await run_in_threadpool(_check_public_key, header.parameter_set, blobs[0])
    except CiphertextError as exc:
        raise ApiError(422, "invalid_public_key", str(exc)) from None
    if want == 2:
        try:
            await run_in_threadpool(_check_galois_keys, header.parameter_set, header.galois_elements, blobs[1])
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
