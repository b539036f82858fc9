"""A provider daemon on PostgreSQL, end to end: the same API as on its embedded SQLite, with every
record (tenants, keys, usage, audit) in the database its URL names and none in its data directory.

One provider (one HE worker) on a fresh database of the session's private PostgreSQL server: the
admin creates a head and a tenant with a small daily query quota, the tenant registers an inference
key and classifies (the decrypted logits match the provider's own), then a request past the quota is
refused with the same 429 as on SQLite, because the counter in PostgreSQL says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from helix_it_helpers import assert_api_error, bearer, create_tenant, https_client, register_seeded

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import LinearHeadLayout
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import ClassifyHeader, KeyPurpose, KeyRegistrationHeader

PSET = "ckks-n8192-q200"


def test_a_provider_on_postgresql_registers_keys_classifies_and_meters(
    provider_service_factory: Any, pg_url: str, admin_headers: dict[str, str]
) -> None:
    svc = provider_service_factory(
        "provider-postgresql", HELIX_PROVIDER_WORKERS="1", HELIX_PROVIDER_DATABASE_URL=pg_url
    )
    svc.start()
    ca = str(svc.ca_cert)
    with https_client(svc.url, ca, headers=admin_headers) as admin:
        head = {"name": "tiny", "dataset": "sst2", "max_examples": 200, "in_distribution_texts": 0}
        resp = admin.post("/v1/admin/heads", json=head)
        assert resp.status_code == 201, resp.text
        tenant_id, api_key = create_tenant(admin, "pytest-postgresql", queries_per_day=6)

        keys = ClientKeys.generate(PSET)
        with ProviderClient(svc.url, Path(ca), api_key=api_key) as pc:
            key = register_seeded(
                pc,
                keys,
                KeyRegistrationHeader(client_name="pytest-pg", purpose=KeyPurpose.inference, parameter_set=PSET),
            )
            info = pc.head("tiny")
            layout = LinearHeadLayout(n=keys.he.n, d=info.dim, k=info.num_classes)
            x = np.random.default_rng(5).normal(0.0, 0.05, size=(4, info.dim))
            header = ClassifyHeader(head_id="tiny", key_id=key.key_id, num_queries=4, query_scale_bits=QUERY_SCALE_BITS)
            queries = encrypt_queries(keys, x, layout)
            reply, out, _, _ = pc.classify(header, queries, max_blob_bytes=1 << 20)
        logits = decrypt_logits(keys, reply, out)
        resp = admin.post("/v1/admin/heads/tiny/reference-logits", json={"embeddings": x.tolist()})
        assert resp.status_code == 200, resp.text
        assert float(np.max(np.abs(logits - np.asarray(resp.json()["logits"])))) < 1e-3

        with https_client(svc.url, ca, headers=bearer(api_key)) as http:
            frame = encode_frame(header, queries)
            past = http.post("/v1/classify", content=frame, headers={"content-type": FRAME_MEDIA_TYPE})
        assert_api_error(past, 429, "query_quota_exceeded", "6 queries per day")

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT key_id, tenant_id FROM keys").fetchall() == [(key.key_id, tenant_id)]
        assert conn.execute("SELECT counter, value FROM usage_counters WHERE counter LIKE 'queries:%'").fetchall() == [
            ("queries:tiny", 4)
        ]
        actions = [
            r[0] for r in conn.execute("SELECT action FROM audit_log WHERE tenant_id = %s ORDER BY seq", [tenant_id])
        ]
        assert "classify" in actions
    data_dir = Path(svc.env["HELIX_PROVIDER_DATA_DIR"])
    assert not (data_dir / "provider.db").exists(), "a provider on PostgreSQL must not also write SQLite"
