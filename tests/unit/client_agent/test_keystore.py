"""The key store skips unreadable metadata (logging it) instead of failing every lookup."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from client_agent.keystore import KeyStore
from shared_protocol.messages import KeyPurpose

GOOD = {
    "key_id": "k_good",
    "provider_url": "https://provider.test",
    "purpose": "alignment",
    "parameter_set": "ckks-n8192-q200",
    "expires_at": "2030-01-01T00:00:00+00:00",
}


def test_unreadable_metadata_is_skipped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = KeyStore(tmp_path / "keys")
    (tmp_path / "keys" / "k_good.json").write_text(json.dumps(GOOD))
    bad = {
        "k_empty.json": "",
        "k_cut.json": json.dumps(GOOD)[:40],
        "k_fields.json": json.dumps({"key_id": "k_fields"}),
        "k_date.json": json.dumps(dict(GOOD, key_id="k_date", expires_at="soon")),
        "k_bytes.json": None,
    }
    for name, text in bad.items():
        path = tmp_path / "keys" / name
        if text is None:
            path.write_bytes(b"\xff\xfe")  # not UTF-8
        else:
            path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="client_agent.keystore"):
        assert [s.key_id for s in store.stored(KeyPurpose.alignment)] == ["k_good"]
    for name in bad:
        assert f"ignoring unreadable key metadata {name}" in caplog.text
