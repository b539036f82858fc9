"""Tokens from files: the first line, a clear error for a missing or empty file, and settings that take
either the variable or the file, never both."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from client_agent.settings import ClientSettings
from helix_web.secrets import read_secret_file
from provider_server.settings import ProviderSettings


def test_first_line_stripped_and_clear_errors(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("  s3cret-token \nignored\n")
    assert read_secret_file(f, "admin token") == "s3cret-token"
    with pytest.raises(ValueError, match="cannot read the admin token file"):
        read_secret_file(tmp_path / "missing", "admin token")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="admin token file .* is empty"):
        read_secret_file(tmp_path / "empty", "admin token")


def test_settings_take_the_token_file_but_not_both(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("from-file\n")
    provider = ProviderSettings(admin_token_file=f, _env_file=None)  # type: ignore[call-arg]
    assert provider.admin_token is not None and provider.admin_token.get_secret_value() == "from-file"
    agent = ClientSettings(api_token_file=f, _env_file=None)  # type: ignore[call-arg]
    assert agent.api_token is not None and agent.api_token.get_secret_value() == "from-file"
    with pytest.raises(ValidationError, match="not both"):
        ProviderSettings(admin_token="x", admin_token_file=f, _env_file=None)  # type: ignore[call-arg]
