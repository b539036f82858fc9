"""Client agent settings from HELIX_CLIENT_* environment variables or a .env file."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HELIX_CLIENT_", env_file=os.environ.get("HELIX_CLIENT_ENV_FILE", ".env"),
                                      env_file_encoding="utf-8", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8444
    data_dir: Path = Path(".helix/client")
    datasets_dir: Path = Path("../shared/datasets")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_token: SecretStr | None = Field(None, description="bearer token for this agent's REST API; unset = open on its bind address")
    provider_url: str = "https://127.0.0.1:8443"
    provider_ca_cert: Path | None = Field(None, description="CA that signed the provider's certificate")
    client_name: str = "helix-client"
    embedder: str = "wordllama"
    parameter_set: str | None = Field(None, description="default: the provider's default")
    ridge_lambda: float = Field(1e-4, ge=0)
    alignment_chunk_ciphertexts: int = Field(24, ge=1, le=512)
    classify_batch_size: int = Field(128, ge=1)
    request_timeout_seconds: float = 600.0
    key_renew_margin_seconds: int = 300
