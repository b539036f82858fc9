"""Key challenges, key registration and the one rule for whether a registered key may be used.

Alignment and inference keys are registered separately and expire; only public material is
registered (the client's CKKS secret key never leaves it). Alignment keys carry Galois keys for
the packing tree's automorphisms, and for nothing else.

Every registration names a challenge: a random seed this provider issued, single use and
short-lived, from which the uniform half of every key ciphertext must be expanded. Re-randomising
a reply with the client's public key hides the reply only if that half is uniform, and the
provider cannot tell a uniform half from a crafted one (zero, a constant) by looking; so it
chooses it, and refuses a key whose uniform half is anything else.

Challenges and keys belong to the tenant that made them: another tenant's id answers exactly like
an unknown one (404) and changes nothing. A key's bytes count against its tenant's storage until it
is revoked; issuing a challenge and registering a key take a token of the tenant's creation bucket."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from helix_he.context import CiphertextError
from helix_he.keys import KeySeedError, load_galois_keys, load_public_key
from helix_he.packing import MAX_STRIDE_BITS, trace_galois_elements
from helix_he.params import get_parameter_set
from helix_he.seeded_keys import CHALLENGE_SEED_BYTES
from shared_protocol.messages import KeyPurpose, KeyRegistrationHeader

from ..blobs import BlobStore
from ..clock import utcnow
from ..errors import BadRequest, Conflict, Forbidden, Gone, StorageFull, Unknown, Unprocessable
from ..settings import ProviderSettings
from ..store import ChallengeRecord, KeyRecord, Store, TenantRecord
from .audit import AuditLog
from .metering import Metering

#: How long a challenge may be answered: long enough to generate and upload keys (~1 s), short enough
#: that issued seeds do not pile up.
CHALLENGE_TTL = timedelta(minutes=5)
#: Expired challenges are kept this long, so a late registration hears "expired", not "unknown".
CHALLENGE_RETENTION = timedelta(hours=1)


class KeyService:
    def __init__(
        self, store: Store, blobs: BlobStore, settings: ProviderSettings, meter: Metering, audit: AuditLog
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._meter = meter
        self._audit = audit

    def issue_challenge(self, tenant: TenantRecord) -> ChallengeRecord:
        """A fresh seed for one registration of this tenant (and a clear-out of long-expired ones)."""
        self._meter.admit_creation(tenant)
        now = utcnow()
        self._store.prune_challenges(now - CHALLENGE_RETENTION)
        challenge = ChallengeRecord(
            challenge_id="c_" + secrets.token_hex(12),
            seed=secrets.token_bytes(CHALLENGE_SEED_BYTES),
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
            tenant_id=tenant.tenant_id,
        )
        self._store.add_challenge(challenge)
        return challenge

    def _take_challenge(self, challenge_id: str | None, tenant_id: str) -> ChallengeRecord:
        """The named challenge, now used; refused if missing, unknown, used before or expired."""
        if challenge_id is None:
            raise Unprocessable(
                "challenge_required",
                "a key registration names a challenge (POST /v1/keys/challenges) whose seed the key's "
                "uniform halves are expanded from (protocol 1.1)",
            )
        challenge = self._store.take_challenge(challenge_id, tenant_id)
        if challenge is None:
            raise Unknown("challenge", challenge_id)
        if challenge.used:
            raise Conflict("challenge_used", f"challenge {challenge_id!r} was already used; ask for a new one")
        if challenge.expires_at <= utcnow():
            raise Gone(
                "challenge_expired",
                f"challenge {challenge_id!r} expired at {challenge.expires_at.isoformat()}; ask for a new one",
            )
        return challenge

    async def register(self, tenant: TenantRecord, header: KeyRegistrationHeader, blobs: list[bytes]) -> KeyRecord:
        """Check the announced parameters, admit the key's bytes to the tenant's storage, take the
        challenge, validate the key material with SEAL and against the challenge's seed (off the
        event loop), then store it; nothing is stored (or charged) for a refused registration, and
        the challenge is spent either way."""
        s = self._settings
        if header.parameter_set not in s.parameter_sets:
            raise Unprocessable(
                "parameter_set_not_accepted",
                f"parameter set {header.parameter_set!r} is not accepted; accepted: {s.parameter_sets}",
            )
        _check_galois_elements(header.parameter_set, header.purpose, header.galois_elements)
        want = 2 if header.galois_elements else 1
        if len(blobs) != want:
            raise BadRequest(
                "malformed_frame",
                "this key registration carries exactly "
                + ("two blobs: the public key and the Galois keys" if want == 2 else "one blob: the public key")
                + f"; got {len(blobs)}",
            )
        admission = self._meter.admit_creation(tenant, storage_bytes=sum(len(b) for b in blobs))
        try:
            key = await self._register(tenant, header, blobs, want)
        except BaseException:
            self._meter.refund(admission)
            raise
        self._audit.record(tenant.tenant_id, "key.registered", subject=key.purpose.value)
        return key

    async def _register(
        self, tenant: TenantRecord, header: KeyRegistrationHeader, blobs: list[bytes], want: int
    ) -> KeyRecord:
        s = self._settings
        challenge = self._take_challenge(header.challenge_id, tenant.tenant_id)
        try:
            await run_in_threadpool(load_public_key, header.parameter_set, blobs[0], challenge.seed)
        except KeySeedError as exc:
            raise _not_from_challenge(exc, challenge) from None
        except CiphertextError as exc:
            raise Unprocessable("invalid_public_key", str(exc)) from None
        if want == 2:
            try:
                await run_in_threadpool(
                    load_galois_keys, header.parameter_set, blobs[1], header.galois_elements, challenge.seed
                )
            except KeySeedError as exc:
                raise _not_from_challenge(exc, challenge) from None
            except CiphertextError as exc:
                raise Unprocessable("invalid_galois_keys", str(exc)) from None
        inference = header.purpose == KeyPurpose.inference
        default_ttl = s.inference_key_ttl_seconds if inference else s.alignment_key_ttl_seconds
        ttl = min(header.ttl_seconds or default_ttl, s.max_key_ttl_seconds)
        created = utcnow()
        public_blob = self._blobs.put(blobs[0], ".pk")
        try:
            galois_blob = self._blobs.put(blobs[1], ".gk") if want == 2 else None
        except StorageFull:  # nothing half-stored: the key is registered whole or not at all
            self._blobs.delete(public_blob)
            raise
        key = KeyRecord(
            key_id="k_" + secrets.token_hex(12),
            client_name=header.client_name,
            purpose=header.purpose,
            parameter_set=header.parameter_set,
            fingerprint=hashlib.sha256(blobs[0]).hexdigest(),
            created_at=created,
            expires_at=created + timedelta(seconds=ttl),
            public_key_blob=public_blob,
            galois_keys_blob=galois_blob,
            galois_elements=tuple(header.galois_elements),
            tenant_id=tenant.tenant_id,
            stored_bytes=sum(len(b) for b in blobs),
        )
        self._store.add_key(key)
        return key

    def get(self, key_id: str, tenant_id: str) -> KeyRecord:
        """A registered key of this tenant that is not revoked (expired keys are still shown)."""
        key = self._store.get_key(key_id)
        if key is None or key.revoked or key.tenant_id != tenant_id:
            raise Unknown("key", key_id)
        return key

    def usable(self, key_id: str, purpose: KeyPurpose, tenant_id: str) -> KeyRecord:
        """A registered, unrevoked, unexpired key of this tenant and of the right purpose, or the
        error naming what is wrong."""
        key = self.get(key_id, tenant_id)
        if key.expires_at <= utcnow():
            raise Gone("key_expired", f"key {key_id!r} expired at {key.expires_at.isoformat()}; register a new key")
        if key.purpose != purpose:
            raise Forbidden(
                "wrong_key_purpose", f"key {key_id!r} is registered for {key.purpose.value}, not {purpose.value}"
            )
        if key.parameter_set not in self._settings.parameter_sets:
            raise Unprocessable("parameter_set_not_accepted", f"this provider no longer accepts {key.parameter_set}")
        return key

    def revoke(self, key_id: str, tenant_id: str) -> None:
        key = self.get(key_id, tenant_id)  # ownership never changes, so checking first is enough
        if not self._store.revoke_key(key.key_id):
            raise Unknown("key", key_id)
        self._audit.record(tenant_id, "key.revoked", subject=key.purpose.value)


def _not_from_challenge(exc: KeySeedError, challenge: ChallengeRecord) -> Unprocessable:
    return Unprocessable("key_not_from_challenge", f"{exc} of {challenge.challenge_id!r}")


def _check_galois_elements(parameter_set: str, purpose: KeyPurpose, elements: list[int]) -> None:
    """Inference keys carry no Galois keys; alignment keys carry exactly the packing tree's."""
    if purpose == KeyPurpose.inference:
        if elements:
            raise Unprocessable("invalid_galois_elements", "inference keys carry no Galois keys")
        return
    n = get_parameter_set(parameter_set).poly_modulus_degree
    expected = trace_galois_elements(n, len(elements))
    if not 1 <= len(elements) <= MAX_STRIDE_BITS or elements != expected:
        raise Unprocessable(
            "invalid_galois_elements",
            f"alignment keys carry Galois keys for 1 + N/2^i, i < k, 1 <= k <= {MAX_STRIDE_BITS}, in "
            f"that order (k=4: {trace_galois_elements(n, 4)}); got {elements}",
        )
