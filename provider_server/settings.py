"""Provider settings from environment variables (HELIX_PROVIDER_*) or a .env file, with embedded
defaults that run the demo on one machine."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from helix_he.budget import MAX_NOISE_FLOODING_BITS
from helix_he.params import DEFAULT_PARAMETER_SET, PARAMETER_SETS
from helix_shards import ExecutorKind
from helix_web.secrets import secret_setting


class ProviderSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HELIX_PROVIDER_",
        env_file=os.environ.get("HELIX_PROVIDER_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    host: str = "127.0.0.1"
    port: int = 8443
    data_dir: Path = Path(".helix/provider")
    database_url: str | None = Field(
        None,
        description="sqlite:///path or postgresql://user[:password]@host[:port]/db; default: sqlite in "
        "<data_dir>/provider.db (replicas share one PostgreSQL database)",
    )
    datasets_dir: Path = Path("../shared/datasets")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per log line (for a collector); text: uvicorn's plain lines"
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    admin_token: SecretStr | None = Field(None, description="bearer token for /v1/admin; unset = admin disabled")
    admin_token_file: Path | None = Field(
        None, description="file holding the admin token (first line), instead of the variable itself"
    )
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        max_length=200,
        description="this process's name among replicas sharing one database and data directory (default "
        "host-pid); it owns the alignment computations it runs, so it must differ between live replicas",
    )
    compute_lease_seconds: float = Field(
        30.0,
        ge=1,
        description="how long an alignment computation stays with its replica without a heartbeat (sent "
        "every third of it); after that any replica may run it again on the client's next POST .../compute",
    )
    encoder: str = "minilm"
    parameter_sets: list[str] = Field(default_factory=lambda: list(PARAMETER_SETS))
    default_parameter_set: str = DEFAULT_PARAMETER_SET
    max_request_bytes: int = 96 * 1024 * 1024
    body_read_timeout_seconds: float = Field(
        30.0, ge=0, description="longest wait for the next part of a request body before 408; 0 waits forever"
    )
    max_ciphertext_bytes: int = 1024 * 1024
    max_queries_per_request: int = 512
    max_alignment_samples: int = 20000
    max_classes: int = Field(256, ge=2, description="most classes a head may have (each costs weights and reply slots)")
    inference_key_ttl_seconds: int = 24 * 3600
    alignment_key_ttl_seconds: int = 3600
    max_key_ttl_seconds: int = 30 * 24 * 3600
    session_ttl_seconds: int = 6 * 3600
    gc_interval_seconds: float = Field(
        600.0, ge=0, description="seconds between garbage collection sweeps; 0 sweeps only on POST /v1/admin/gc"
    )
    session_idle_ttl_seconds: int = Field(
        3600, ge=0, description="a session with no chunk, computation or result for this long is abandoned"
    )
    result_ttl_seconds: int = Field(3600, ge=0, description="how long a finished alignment result is kept")
    expired_key_retention_seconds: int = Field(
        24 * 3600, ge=0, description="how long an expired key is remembered (its client hears 'expired')"
    )
    orphan_grace_seconds: int = Field(
        3600, ge=0, description="age after which a blob no record names, or a temporary file, is removed"
    )
    alignment_validation_folds: int = Field(
        5,
        ge=0,
        le=20,
        description="K fixed validation folds a client may ask "
        "per-fold cross-covariances for (shared_protocol.folds); < 2 disables them",
    )
    workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, description="HE worker processes for classify"
    )
    alignment_workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="HE worker processes for alignment sessions (chunk checks and cross-covariances), "
        "separate from the classify workers so an alignment never occupies the workers classify needs",
    )
    alignment_worker_nice: int = Field(
        10, ge=0, le=19, description="niceness added to alignment workers, so classify gets the CPU first"
    )
    head_training_timeout_seconds: float = Field(
        1800.0,
        gt=0,
        description="a head training running longer than this is stopped (its process killed) and fails; "
        "nothing of it is stored",
    )
    max_training_jobs: int = Field(
        2, ge=1, description="head trainings queued or running at once; more are refused with 429"
    )
    executor: ExecutorKind = Field(
        "local",
        description="where alignment cross-covariances run: local (the alignment workers above) or ray (shards of "
        "ciphertexts on a Ray cluster, partial results added in a tree; needs the `ray` extra)",
    )
    ray_address: str | None = Field(
        None, description="the Ray cluster to join (e.g. ray://head:10001 or auto); unset starts a local one"
    )
    ray_workers: int = Field(2, ge=1, description="Ray workers (one CPU each) computing shards at once")
    alignment_shard_ciphertexts: int = Field(
        256, ge=1, description="client ciphertexts per shard of a cross-covariance on a Ray cluster"
    )
    noise_flooding_bits: int = Field(
        0,
        ge=0,
        le=MAX_NOISE_FLOODING_BITS,
        description="uniform noise in [-2^bits, 2^bits] added to each logit "
        "at the output scale 2^48, i.e. +-2^(bits-48) in logit units (36 bits: 2.4e-4)",
    )

    max_query_norm: float = Field(
        2.0,
        gt=0,
        le=1e6,
        description="the largest query norm ||x||_2 in the provider's embedding space a head must answer "
        "exactly; a head is offered under a parameter set only if its outputs for such queries fit the set's "
        "headroom (unit-norm encoders: 1-2; raise it for encoders with larger vectors)",
    )

    tenant_queries_per_day: int = Field(
        100_000, ge=0, description="default quota: queries per UTC day per head a tenant may classify"
    )
    tenant_alignments_per_day: int = Field(50, ge=0, description="default quota: alignment sessions per UTC day")
    tenant_storage_bytes: int = Field(
        8 * 1024**3, ge=0, description="default quota: bytes of keys, chunks and results held for a tenant"
    )
    tenant_rate_per_second: float = Field(
        20.0, gt=0, description="default token refill per second of classify and creation requests"
    )
    tenant_rate_burst: int = Field(100, ge=1, description="default token bucket size (requests in a burst)")

    @model_validator(mode="after")
    def _token_from_file(self) -> ProviderSettings:
        names = ("HELIX_PROVIDER_ADMIN_TOKEN", "HELIX_PROVIDER_ADMIN_TOKEN_FILE")
        self.admin_token = secret_setting(self.admin_token, self.admin_token_file, names, "admin token")
        return self

    @field_validator("parameter_sets")
    @classmethod
    def _known_sets(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in PARAMETER_SETS]
        if unknown:
            raise ValueError(f"unknown parameter sets {unknown}; known: {sorted(PARAMETER_SETS)}")
        return v

    @property
    def offered_validation_folds(self) -> int:
        """K if per-fold alignment results are offered, else 0 (fewer than two folds validate nothing)."""
        return self.alignment_validation_folds if self.alignment_validation_folds >= 2 else 0

    @property
    def store_url(self) -> str:
        """The database URL the Store is opened from (`provider_server.store.open_store`)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'provider.db'}"
