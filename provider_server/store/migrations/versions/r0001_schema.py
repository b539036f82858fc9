"""The schema of the last release before Alembic (its SQLite schema version 6), on either database.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

A SQLite database from before Alembic is not created by this revision but brought to version 6 by
the legacy steps (`provider_server.store.legacy`) and stamped 0001; both paths end in the same
tables. The audit log refuses UPDATE and DELETE in the database itself (SQLite: triggers raising
ABORT, as before; PostgreSQL: triggers raising an exception, TRUNCATE included), so not even an
operator's stray statement rewrites it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from provider_server.store.schema import BIGINT, FLAG, REAL, TEXT, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_AUDIT_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)
POSTGRESQL_AUDIT_TRIGGERS = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "heads",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("task", TEXT, nullable=False),
        sa.Column("class_names", TEXT, nullable=False),
        sa.Column("dim", BIGINT, nullable=False),
        sa.Column("num_classes", BIGINT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("weights_blob", TEXT, nullable=False),
        sa.Column("bias_blob", TEXT, nullable=False),
        sa.Column("texts", TEXT, nullable=False),
        sa.Column("texts_embeddings_blob", TEXT),
        sa.Column("encoder_model_id", TEXT, nullable=False),
        sa.Column("report", TEXT, nullable=False),
        sa.Column("output_mode", TEXT, nullable=False, server_default="logits"),
    )
    op.create_table(
        "corpora",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("sha256", TEXT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("texts_blob", TEXT, nullable=False),
        sa.Column("embeddings_blob", TEXT, nullable=False),
        sa.Column("encoder_model_id", TEXT, nullable=False),
    )
    op.create_table(
        "keys",
        sa.Column("key_id", TEXT, primary_key=True),
        sa.Column("client_name", TEXT, nullable=False),
        sa.Column("purpose", TEXT, nullable=False),
        sa.Column("parameter_set", TEXT, nullable=False),
        sa.Column("fingerprint", TEXT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("public_key_blob", TEXT, nullable=False),
        sa.Column("revoked", FLAG, nullable=False, server_default=sa.false()),
        sa.Column("galois_keys_blob", TEXT),
        sa.Column("galois_elements", TEXT, nullable=False, server_default="[]"),
        sa.Column("tenant_id", TEXT),
        sa.Column("stored_bytes", BIGINT, nullable=False, server_default="0"),
    )
    op.create_table(
        "sessions",
        sa.Column("session_id", TEXT, primary_key=True),
        sa.Column("head_id", TEXT, nullable=False),
        sa.Column("corpus_id", TEXT, nullable=False),
        sa.Column("key_id", TEXT, nullable=False),
        sa.Column("parameter_set", TEXT, nullable=False),
        sa.Column("state", TEXT, nullable=False),
        sa.Column("num_samples", BIGINT, nullable=False),
        sa.Column("feature_dim", BIGINT, nullable=False),
        sa.Column("samples_per_ciphertext", BIGINT, nullable=False),
        sa.Column("num_ciphertexts", BIGINT, nullable=False),
        sa.Column("received", TEXT, nullable=False),
        sa.Column("computed_columns", BIGINT, nullable=False),
        sa.Column("output_columns", BIGINT, nullable=False),
        sa.Column("error", TEXT),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("include_head_texts", FLAG, nullable=False),
        sa.Column("client_model_id", TEXT, nullable=False),
        sa.Column("data_scale_bits", BIGINT),
        sa.Column("result_blob", TEXT),
        sa.Column("validation_folds", BIGINT, nullable=False, server_default="0"),
        sa.Column("tenant_id", TEXT),
        sa.Column("stored_bytes", BIGINT, nullable=False, server_default="0"),
    )
    op.create_table(
        "challenges",
        sa.Column("challenge_id", TEXT, primary_key=True),
        sa.Column("seed", TEXT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used", FLAG, nullable=False, server_default=sa.false()),
        sa.Column("tenant_id", TEXT),
    )
    op.create_table(
        "tenants",
        sa.Column("tenant_id", TEXT, primary_key=True),
        sa.Column("name", TEXT, nullable=False, unique=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("disabled", FLAG, nullable=False, server_default=sa.false()),
        sa.Column("queries_per_day", BIGINT),
        sa.Column("alignments_per_day", BIGINT),
        sa.Column("storage_bytes", BIGINT),
        sa.Column("rate_per_second", REAL),
        sa.Column("rate_burst", BIGINT),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", TEXT, primary_key=True),
        sa.Column("tenant_id", TEXT, sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("secret_sha256", TEXT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked", FLAG, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "usage_counters",
        sa.Column("tenant_id", TEXT, nullable=False),
        sa.Column("counter", TEXT, nullable=False),
        sa.Column("period", TEXT, nullable=False),
        sa.Column("value", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "counter", "period"),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("tenant_id", TEXT, nullable=False),
        sa.Column("bucket", TEXT, nullable=False),
        sa.Column("tokens", REAL, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "bucket"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("tenant_id", TEXT),
        sa.Column("actor", TEXT, nullable=False),
        sa.Column("action", TEXT, nullable=False),
        sa.Column("subject", TEXT),
        sa.Column("count", BIGINT, nullable=False),
        sa.Column("request_id", TEXT),
        sqlite_autoincrement=True,
    )
    op.create_index("audit_log_tenant", "audit_log", ["tenant_id", "seq"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for sql in POSTGRESQL_AUDIT_TRIGGERS if postgresql else SQLITE_AUDIT_TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing to go back to; restore a backup instead")
