"""Client agent settings from HELIX_CLIENT_* environment variables or a .env file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from helix_alignment.methods import CLIENT_DEFAULT_METHOD, METHODS
from helix_shards import ExecutorKind
from helix_web.secrets import secret_setting

#: What secure alignment can give the client: its own X^T X and 1^T X, and X^T Y_A and 1^T Y_A,
#: whole or per validation fold (AlignmentCreate.validation_folds).
PROTOCOL_STATISTICS = frozenset({"xtx", "sums", "xty", "fold_xty"})


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HELIX_CLIENT_",
        env_file=os.environ.get("HELIX_CLIENT_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    host: str = "127.0.0.1"
    port: int = 8444
    data_dir: Path = Path(".helix/client")
    datasets_dir: Path = Path("../shared/datasets")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per log line (for a collector); text: uvicorn's plain lines"
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_token: SecretStr | None = Field(
        None, description="bearer token for this agent's REST API; unset = open on its bind address"
    )
    api_token_file: Path | None = Field(
        None, description="file holding the API token (first line), instead of the variable itself"
    )
    provider_url: str = "https://127.0.0.1:8443"
    provider_ca_cert: Path | None = Field(None, description="CA that signed the provider's certificate")
    provider_api_key: SecretStr | None = Field(
        None, description="this agent's API key at the provider (its tenant's), sent as a bearer token"
    )
    provider_api_key_file: Path | None = Field(
        None, description="a file holding the API key (read once at start-up); used when provider_api_key is unset"
    )
    client_name: str = "helix-client"
    embedder: str = "wordllama"
    parameter_set: str | None = Field(None, description="default: the provider's default")
    ridge_lambda: float = Field(1e-4, ge=0, description="lambda of alignment_method=ridge (the paper's setting)")
    alignment_method: str = Field(
        CLIENT_DEFAULT_METHOD,
        description="map solved from the alignment statistics: "
        "methods that need X^T Y and 1^T Y (the paper's disclosure) or, for the *_cv methods, "
        "their parts on the provider's validation folds; never the provider's Y^T Y",
    )
    alignment_kappa: float | None = Field(
        None,
        gt=0,
        description="relative ridge strength (ridge_scaled, reduced_rank, whitened_procrustes); default: the method's",
    )
    alignment_rank: int | None = Field(None, ge=1, description="rank of reduced_rank maps; default: the method's")
    alignment_chunk_ciphertexts: int = Field(24, ge=1, le=512)
    executor: ExecutorKind = Field(
        "local",
        description="where an alignment embeds and encrypts its shards: local (in the job's thread) or ray "
        "(a Ray cluster of the client's own, with the `ray` extra installed; it receives the alignment's secret key)",
    )
    ray_address: str | None = Field(
        None, description="the Ray cluster to join (e.g. ray://head:10001 or auto); unset starts a local one"
    )
    ray_workers: int = Field(2, ge=1, description="Ray workers (one CPU each) embedding or encrypting at once")
    embed_shard_texts: int = Field(
        2048, ge=1, description="texts per embedding shard on a Ray cluster (locally all texts are one shard)"
    )
    classify_batch_size: int = Field(128, ge=1)
    request_timeout_seconds: float = 600.0
    provider_retry_seconds: float = Field(
        10.0,
        ge=0,
        description="how long calls that are safe to repeat are retried (backoff with jitter) while the provider "
        "is away, before the agent answers 503 provider_unavailable; also the Retry-After it sends",
    )
    body_read_timeout_seconds: float = Field(
        30.0, ge=0, description="longest wait for the next part of a request body before 408; 0 waits forever"
    )
    provider_ready_cache_seconds: float = Field(
        5.0, ge=0, description="how long the provider's answer to /readyz is reused by this agent's /readyz"
    )
    key_renew_margin_seconds: int = Field(
        300,
        ge=0,
        description="an inference key this close to its expiry is replaced by a new one before the next classification",
    )
    head_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="how long head metadata and the provider's info are "
        "reused before they are fetched again; 0 fetches them for every request",
    )
    max_running_alignments: int = Field(
        2, ge=1, description="alignment jobs running at once; more are refused with 429 too_many_alignments"
    )
    max_retained_alignments: int = Field(
        100,
        ge=1,
        description="alignment jobs kept, in memory and under "
        "data_dir/jobs; beyond it the oldest finished jobs are forgotten",
    )

    @model_validator(mode="after")
    def _token_from_file(self) -> ClientSettings:
        names = ("HELIX_CLIENT_API_TOKEN", "HELIX_CLIENT_API_TOKEN_FILE")
        self.api_token = secret_setting(self.api_token, self.api_token_file, names, "API token")
        return self

    @field_validator("alignment_method")
    @classmethod
    def _private_method(cls, value: str) -> str:
        """Refuse methods whose statistics the secure protocol does not compute (the provider's Y^T Y)."""
        return check_client_method(value)

    def api_key(self) -> str | None:
        """The provider API key: the setting, else the first line of the key file, else None."""
        if self.provider_api_key is not None and self.provider_api_key.get_secret_value():
            return self.provider_api_key.get_secret_value()
        if self.provider_api_key_file is not None:
            return self.provider_api_key_file.read_text().strip() or None
        return None

    def map_params(self) -> dict[str, float | int]:
        """Overrides for the configured method (only those that apply to it)."""
        known = METHODS[self.alignment_method].params
        given = {"kappa": self.alignment_kappa, "rank": self.alignment_rank}
        return {k: v for k, v in given.items() if v is not None and k in known}


def check_client_method(value: str) -> str:
    """A map method the client may use: known, and solvable from X^T X, X^T Y and the sums, whole
    or per validation fold."""
    if value not in METHODS:
        raise ValueError(f"unknown alignment method {value!r}; known: {sorted(METHODS)}")
    missing = METHODS[value].needs - PROTOCOL_STATISTICS
    if missing:
        raise ValueError(
            f"alignment method {value!r} needs {sorted(missing)}, which the secure protocol does not provide"
        )
    return value
