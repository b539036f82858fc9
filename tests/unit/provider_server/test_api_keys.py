"""API keys: 256-bit secrets, stored as SHA-256, parsed strictly, compared in constant time."""

from __future__ import annotations

from provider_server.api_keys import new_api_key, parse_api_key, secret_hash, secret_matches


def test_a_new_key_parses_back_and_matches_only_its_hash() -> None:
    made = new_api_key()
    parsed = parse_api_key(made.api_key)
    assert parsed is not None and parsed[0] == made.key_id
    key_id, secret = parsed
    assert len(secret) == 64 and secret_hash(secret) == made.secret_sha256
    assert secret not in made.secret_sha256 and made.api_key.startswith(f"hx_{key_id}_")
    assert secret_matches(secret, made.secret_sha256)
    assert not secret_matches("0" * 64, made.secret_sha256)
    assert new_api_key().api_key != made.api_key


def test_malformed_keys_do_not_parse() -> None:
    good = new_api_key().api_key
    for bad in ("", "hx_", good + "0", good[:-1], good.upper(), good.replace("hx_", "hy_", 1), f"{good} x", "Bearer"):
        assert parse_api_key(bad) is None, bad
