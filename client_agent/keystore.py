"""Client key store: secret keys on local disk (0600), metadata beside them, one fresh key pair per
purpose. The disk is the keys' home across restarts; while the agent runs, the inference key lives in
memory (`key_manager.InferenceKeys`) and the store is read only when that key is first needed."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from helix_he.keys import ClientKeys
from helix_he.packing import trace_galois_elements
from helix_web.private_files import private_dir, write_private
from shared_protocol.messages import KeyPurpose, KeyRegistrationHeader

from .provider_client import ProviderClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    provider_url: str
    purpose: str
    parameter_set: str
    expires_at: str

    @property
    def expires(self) -> datetime:
        return datetime.fromisoformat(self.expires_at)


class KeyStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)

    def _meta(self, key_id: str) -> Path:
        return self.root / f"{key_id}.json"

    def _secret(self, key_id: str) -> Path:
        return self.root / f"{key_id}.sk"

    def register(
        self, provider: ProviderClient, client_name: str, purpose: KeyPurpose, parameter_set: str, stride_bits: int = 0
    ) -> tuple[StoredKey, ClientKeys]:
        """A fresh key pair; alignment keys also send Galois keys for a packing stride of 2^stride_bits.
        The provider issues the seed of the keys' uniform halves (a challenge) and checks it."""
        keys = ClientKeys.generate(parameter_set)
        elements = trace_galois_elements(keys.he.n, stride_bits)
        challenge = provider.key_challenge()
        seed = bytes.fromhex(challenge.seed)
        header = KeyRegistrationHeader(
            client_name=client_name,
            purpose=purpose,
            parameter_set=parameter_set,
            galois_elements=elements,
            challenge_id=challenge.challenge_id,
        )
        info = provider.register_key(
            header, keys.public_key_bytes(seed), keys.galois_key_bytes(stride_bits, seed) if elements else None
        )
        stored = StoredKey(info.key_id, provider.base_url, purpose.value, parameter_set, info.expires_at.isoformat())
        keys.save(self._secret(info.key_id))
        write_private(self._meta(info.key_id), json.dumps(asdict(stored)).encode())
        return stored, keys

    def load(self, key_id: str) -> tuple[StoredKey, ClientKeys]:
        stored = StoredKey(**json.loads(self._meta(key_id).read_text()))
        return stored, ClientKeys.load(stored.parameter_set, self._secret(key_id))

    def forget(self, key_id: str) -> None:
        self._secret(key_id).unlink(missing_ok=True)
        self._meta(key_id).unlink(missing_ok=True)

    def stored(self, purpose: KeyPurpose) -> list[StoredKey]:
        """The readable stored keys of one purpose; unreadable metadata is skipped (see `_read`)."""
        return [s for s in map(self._read, self.root.glob("*.json")) if s is not None and s.purpose == purpose.value]

    @staticmethod
    def _read(meta: Path) -> StoredKey | None:
        """A key's metadata, or None if the file is empty or corrupt (say, cut short by a crash of an
        older version that wrote it in place): such a key cannot be used, so it is ignored, not fatal."""
        try:
            fields = json.loads(meta.read_text())
            stored = StoredKey(**fields)
            datetime.fromisoformat(stored.expires_at)  # the expiry must parse, or the key is unusable
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable key metadata %s: %s", meta.name, exc)
            return None
        return stored

    def newest(
        self, provider_url: str, purpose: KeyPurpose, parameter_set: str, valid_after: datetime
    ) -> StoredKey | None:
        """The stored key for this provider, purpose and parameter set that expires last, if it is
        still valid at `valid_after`."""
        best: StoredKey | None = None
        for s in self.stored(purpose):
            if (
                s.provider_url == provider_url
                and s.parameter_set == parameter_set
                and s.expires > valid_after
                and (best is None or s.expires > best.expires)
            ):
                best = s
        return best
