"""The provider's tables as SQLAlchemy Core objects: what the Store's queries are written against.

One description serves SQLite and PostgreSQL; the column types below pick each database's encoding.
SQLite keeps the encodings of the first release (ISO-8601 text timestamps, integer booleans), so
databases made before SQLAlchemy read unchanged; PostgreSQL gets native timestamps and booleans, and
byte-order ("C") collation on text, so ORDER BY on names and ids sorts as SQLite sorts, whatever the
database's locale. Lists (class names, texts, received indices) are JSON text on both.

The migrations (`migrations/versions/`) create these tables; tests/unit/provider_server/store checks
that a migrated database matches this module, so a change here without a revision fails there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

#: Text that sorts by bytes on both databases (SQLite's default; PostgreSQL's "C" collation).
TEXT: TypeEngine[str] = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
#: 64-bit integers (byte counts pass 2**31); SQLite's INTEGER already is, and must be, for its rowids.
BIGINT: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
FLAG = Boolean(create_constraint=False)
REAL = Float()


class UtcTimestamp(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime: ISO-8601 text on SQLite (the first release's encoding, which
    sorts and compares as time because every value is UTC in one format), timestamptz on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.isoformat()

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        return value.astimezone(UTC)  # type: ignore[no-any-return]


TIMESTAMP = UtcTimestamp()

metadata = MetaData()

heads = Table(
    "heads",
    metadata,
    Column("id", TEXT, primary_key=True),
    Column("name", TEXT, nullable=False),
    Column("task", TEXT, nullable=False),
    Column("class_names", TEXT, nullable=False),
    Column("dim", BIGINT, nullable=False),
    Column("num_classes", BIGINT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("weights_blob", TEXT, nullable=False),
    Column("bias_blob", TEXT, nullable=False),
    Column("texts", TEXT, nullable=False),
    Column("texts_embeddings_blob", TEXT),
    Column("encoder_model_id", TEXT, nullable=False),
    Column("report", TEXT, nullable=False),
    Column("output_mode", TEXT, nullable=False, server_default="logits"),
    Column("map_holder", TEXT, nullable=False, server_default="client"),
    Column("base_head_id", TEXT),
    Column("tenant_id", TEXT),
    Index("heads_base", "base_head_id"),
)

corpora = Table(
    "corpora",
    metadata,
    Column("id", TEXT, primary_key=True),
    Column("name", TEXT, nullable=False),
    Column("size", BIGINT, nullable=False),
    Column("sha256", TEXT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("texts_blob", TEXT, nullable=False),
    Column("embeddings_blob", TEXT, nullable=False),
    Column("encoder_model_id", TEXT, nullable=False),
)

keys = Table(
    "keys",
    metadata,
    Column("key_id", TEXT, primary_key=True),
    Column("client_name", TEXT, nullable=False),
    Column("purpose", TEXT, nullable=False),
    Column("parameter_set", TEXT, nullable=False),
    Column("fingerprint", TEXT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
    Column("public_key_blob", TEXT, nullable=False),
    Column("revoked", FLAG, nullable=False, server_default=false()),
    Column("galois_keys_blob", TEXT),
    Column("galois_elements", TEXT, nullable=False, server_default="[]"),
    Column("tenant_id", TEXT),
    Column("stored_bytes", BIGINT, nullable=False, server_default="0"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", TEXT, primary_key=True),
    Column("head_id", TEXT, nullable=False),
    Column("corpus_id", TEXT, nullable=False),
    Column("key_id", TEXT, nullable=False),
    Column("parameter_set", TEXT, nullable=False),
    Column("state", TEXT, nullable=False),
    Column("num_samples", BIGINT, nullable=False),
    Column("feature_dim", BIGINT, nullable=False),
    Column("samples_per_ciphertext", BIGINT, nullable=False),
    Column("num_ciphertexts", BIGINT, nullable=False),
    Column("received", TEXT, nullable=False),
    Column("computed_columns", BIGINT, nullable=False),
    Column("output_columns", BIGINT, nullable=False),
    Column("error", TEXT),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
    Column("include_head_texts", FLAG, nullable=False),
    Column("client_model_id", TEXT, nullable=False),
    Column("data_scale_bits", BIGINT),
    Column("result_blob", TEXT),
    Column("validation_folds", BIGINT, nullable=False, server_default="0"),
    Column("tenant_id", TEXT),
    Column("stored_bytes", BIGINT, nullable=False, server_default="0"),
    Column("map_holder", TEXT, nullable=False, server_default="client"),
    Column("map_method", TEXT, nullable=False, server_default=""),
    Column("map_params", TEXT, nullable=False, server_default="{}"),
    Column("derived_head_id", TEXT),
    Column("map_choice", TEXT, nullable=False, server_default="{}"),
    Column("compute_owner", TEXT),
    Column("lease_expires_at", TIMESTAMP),
)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge_id", TEXT, primary_key=True),
    Column("seed", TEXT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
    Column("used", FLAG, nullable=False, server_default=false()),
    Column("tenant_id", TEXT),
)

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", TEXT, primary_key=True),
    Column("name", TEXT, nullable=False, unique=True),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("disabled", FLAG, nullable=False, server_default=false()),
    Column("queries_per_day", BIGINT),
    Column("alignments_per_day", BIGINT),
    Column("storage_bytes", BIGINT),
    Column("rate_per_second", REAL),
    Column("rate_burst", BIGINT),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", TEXT, primary_key=True),
    Column("tenant_id", TEXT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("secret_sha256", TEXT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("revoked", FLAG, nullable=False, server_default=false()),
)

usage_counters = Table(
    "usage_counters",
    metadata,
    Column("tenant_id", TEXT, nullable=False),
    Column("counter", TEXT, nullable=False),
    Column("period", TEXT, nullable=False),
    Column("value", BIGINT, nullable=False),
    PrimaryKeyConstraint("tenant_id", "counter", "period"),
)

rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("tenant_id", TEXT, nullable=False),
    Column("bucket", TEXT, nullable=False),
    Column("tokens", REAL, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "bucket"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BIGINT, primary_key=True, autoincrement=True),
    Column("at", TIMESTAMP, nullable=False),
    Column("tenant_id", TEXT),
    Column("actor", TEXT, nullable=False),
    Column("action", TEXT, nullable=False),
    Column("subject", TEXT),
    Column("count", BIGINT, nullable=False),
    Column("request_id", TEXT),
    Index("audit_log_tenant", "tenant_id", "seq"),
    sqlite_autoincrement=True,
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", TEXT, primary_key=True),
    Column("kind", TEXT, nullable=False),
    Column("state", TEXT, nullable=False),
    Column("head_id", TEXT, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("timeout_seconds", REAL, nullable=False),
    Column("started_at", TIMESTAMP),
    Column("finished_at", TIMESTAMP),
    Column("pid", BIGINT),
    Column("seconds", REAL),
    Column("error_code", TEXT),
    Column("error", TEXT),
    Index("jobs_created", "created_at"),
)
