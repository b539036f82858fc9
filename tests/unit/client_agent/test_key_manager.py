"""Which stored key the agent picks, when a key counts as fresh, and which provider refusals mean a
key is dead (the parts of the key lifetime that need no provider)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from client_agent.key_manager import fresh_enough, is_dead_key
from client_agent.keystore import KeyStore, StoredKey
from client_agent.provider_client import ProviderError
from shared_protocol.messages import KeyPurpose

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://provider"


def key(key_id: str, hours: float, *, purpose: str = "inference", url: str = URL, pset: str = "p1") -> StoredKey:
    return StoredKey(key_id, url, purpose, pset, (NOW + timedelta(hours=hours)).isoformat())


def write(store: KeyStore, *keys: StoredKey) -> None:
    for k in keys:
        (store.root / f"{k.key_id}.json").write_text(json.dumps(asdict(k)))
        (store.root / f"{k.key_id}.sk").write_bytes(b"secret")


def test_newest_usable_key_for_this_provider_purpose_and_parameter_set(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    write(
        store,
        key("k_old", 2),
        key("k_new", 20),
        key("k_expired", -1),
        key("k_other_url", 30, url="https://x"),
        key("k_other_pset", 30, pset="p2"),
        key("k_align", 30, purpose="alignment"),
    )
    assert store.newest(URL, KeyPurpose.inference, "p1", NOW).key_id == "k_new"  # type: ignore[union-attr]
    assert store.newest(URL, KeyPurpose.inference, "p2", NOW).key_id == "k_other_pset"  # type: ignore[union-attr]
    assert store.newest(URL, KeyPurpose.inference, "p1", NOW + timedelta(hours=21)) is None
    assert {k.key_id for k in store.stored(KeyPurpose.alignment)} == {"k_align"}
    store.forget("k_new")
    assert not list(tmp_path.glob("keys/k_new.*"))
    assert store.newest(URL, KeyPurpose.inference, "p1", NOW).key_id == "k_old"  # type: ignore[union-attr]


def test_a_key_within_the_renew_margin_is_not_fresh() -> None:
    k = key("k", 1)  # expires in an hour
    assert fresh_enough(k, NOW, 300)
    assert fresh_enough(k, NOW, 3599)
    assert not fresh_enough(k, NOW, 3600)
    assert not fresh_enough(k, NOW + timedelta(minutes=56), 300)


def test_dead_key_answers() -> None:
    assert is_dead_key(ProviderError(404, "unknown_key", "no key with id 'k'"))
    assert is_dead_key(ProviderError(410, "key_expired", "key 'k' expired"))
    assert not is_dead_key(ProviderError(404, "unknown_head", "no head with id 'h'"))
    assert not is_dead_key(ProviderError(403, "wrong_key_purpose", "..."))
    assert not is_dead_key(ProviderError(502, "error", "..."))
