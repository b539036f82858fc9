"""The agent's inference keys, held in memory while they are good.

Loading a secret key means reading it from disk and rebuilding SEAL objects; doing that for every
classification costs more than the classification of one text. So the key for a parameter set is
loaded (or registered) once and handed out from memory until it comes within the renew margin of its
expiry, or until the provider says it no longer knows it. Replacing it happens under a lock, so
requests that arrive together register one new key, not one each."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from helix_he.keys import ClientKeys
from shared_protocol.messages import KeyPurpose

from .keystore import KeyStore, StoredKey
from .provider_client import ProviderClient, ProviderError


@dataclass(frozen=True)
class InferenceKey:
    """A registered inference key and its secret half, ready to encrypt and decrypt."""

    stored: StoredKey
    keys: ClientKeys

    @property
    def key_id(self) -> str:
        return self.stored.key_id


def fresh_enough(stored: StoredKey, now: datetime, margin_s: float) -> bool:
    """A key is used while it has more than the renew margin left before it expires."""
    return stored.expires > now + timedelta(seconds=margin_s)


def is_dead_key(exc: ProviderError) -> bool:
    """The provider's answer for a key it will not use again: unknown or revoked (404 unknown_key) or
    expired (410)."""
    return (exc.status == 404 and exc.code == "unknown_key") or exc.status == 410


class InferenceKeys:
    """One inference key per parameter set, in memory; the key store is read at most once per set."""

    def __init__(self, store: KeyStore, provider: ProviderClient, client_name: str, renew_margin_s: float) -> None:
        self._store = store
        self._provider = provider
        self._client_name = client_name
        self._margin_s = renew_margin_s
        self._current: dict[str, InferenceKey] = {}
        self._looked_on_disk: set[str] = set()
        self._lock = threading.Lock()

    def get(self, parameter_set: str) -> InferenceKey:
        """The key to use now: the cached one while it is fresh enough, else (once, under the lock)
        the newest usable key on disk at first use, else a newly registered one."""
        key = self._current.get(parameter_set)
        if key is not None and fresh_enough(key.stored, datetime.now(UTC), self._margin_s):
            return key
        with self._lock:
            now = datetime.now(UTC)
            key = self._current.get(parameter_set)
            if key is not None and fresh_enough(key.stored, now, self._margin_s):
                return key  # another request renewed it while this one waited
            key = self._from_disk(parameter_set, now) or self._register(parameter_set)
            old = self._current.get(parameter_set)
            self._current[parameter_set] = key
            if old is not None and old.key_id != key.key_id:
                self._store.forget(old.key_id)  # near its expiry and replaced: no longer needed
            return key

    def drop(self, key_id: str) -> None:
        """Forget a key the provider refused (revoked, expired or unknown there); the next `get`
        registers a new one. Dropping a key that was already replaced does nothing, so requests that
        failed with the same key together cause one registration."""
        with self._lock:
            for pset, key in list(self._current.items()):
                if key.key_id == key_id:
                    del self._current[pset]
                    self._store.forget(key_id)

    def _from_disk(self, parameter_set: str, now: datetime) -> InferenceKey | None:
        if parameter_set in self._looked_on_disk:
            return None
        self._looked_on_disk.add(parameter_set)
        stored = self._store.newest(
            self._provider.base_url, KeyPurpose.inference, parameter_set, now + timedelta(seconds=self._margin_s)
        )
        if stored is None:
            return None
        return InferenceKey(*self._store.load(stored.key_id))

    def _register(self, parameter_set: str) -> InferenceKey:
        return InferenceKey(
            *self._store.register(self._provider, self._client_name, KeyPurpose.inference, parameter_set)
        )
