"""The Store's part of provider-held maps, on SQLite and PostgreSQL: heads derived for one tenant,
provider-held sessions, their completion in one transaction, the cascade from a base head to its
derived heads, and revision 0002 over rows from before it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from provider_server.store import (
    Charge,
    HeadRecord,
    RecordExistsError,
    SessionRecord,
    Store,
    TrainingReport,
    open_store,
)
from provider_server.store import engine as engines
from provider_server.store.legacy import MIGRATIONS
from provider_server.store.migrate import config, head_revision
from shared_protocol.messages import AlignmentState, MapHolder

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=("sqlite", "postgresql"))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database of each kind."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'provider.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    try:
        yield s
    finally:
        s.close()


def base_head(ident: str = "sst2", holder: MapHolder = MapHolder.either) -> HeadRecord:
    return HeadRecord(
        id=ident,
        name=ident,
        task="sentiment",
        class_names=("negative", "positive"),
        dim=384,
        num_classes=2,
        created_at=T0,
        weights_blob="w.npy",
        bias_blob="b.npy",
        texts=("a film",),
        texts_embeddings_blob="t.npy",
        encoder_model_id="minilm",
        report=TrainingReport(train_examples=100, train_accuracy=0.875),
        map_holder=holder,
    )


def derived(base: HeadRecord, ident: str, tenant: str) -> HeadRecord:
    return replace(
        base,
        id=ident,
        dim=128,
        weights_blob=f"{ident}-w.npy",
        texts=(),
        texts_embeddings_blob=None,
        map_holder=MapHolder.provider,
        base_head_id=base.id,
        tenant_id=tenant,
    )


def held_session(ident: str = "a_held", head_id: str = "sst2", tenant: str = "t_1") -> SessionRecord:
    return SessionRecord(
        session_id=ident,
        head_id=head_id,
        corpus_id="wiki",
        key_id="",
        parameter_set="",
        state=AlignmentState.receiving,
        num_samples=600,
        feature_dim=128,
        samples_per_ciphertext=512,
        num_ciphertexts=2,
        received=(),
        computed_columns=0,
        output_columns=384,
        error=None,
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        include_head_texts=False,
        client_model_id="wordllama",
        data_scale_bits=None,
        result_blob=None,
        tenant_id=tenant,
        map_holder=MapHolder.provider,
        map_method="ridge_scaled",
        map_params=(("kappa", 0.5),),
    )


def test_map_holder_owner_and_base_read_back(store: Store) -> None:
    base = base_head()
    store.add_head(base)
    store.add_head(derived(base, "ph_1", "t_1"))
    assert store.get_head("sst2") == base
    got = store.get_head("ph_1")
    assert got is not None and got.base_head_id == "sst2" and got.tenant_id == "t_1"
    assert got.map_holder == MapHolder.provider and got.counted_as == "sst2"
    assert got.visible_to("t_1") and not got.visible_to("t_2")
    assert base.visible_to("t_2") and base.counted_as == "sst2"


def test_deleting_a_base_head_deletes_its_derived_heads_only(store: Store) -> None:
    a, b = base_head("a"), base_head("b")
    for h in (a, b, derived(a, "ph_a1", "t_1"), derived(a, "ph_a2", "t_2"), derived(b, "ph_b1", "t_1")):
        store.add_head(h)
    assert store.delete_head("a") is True
    assert [h.id for h in store.list_heads()] == ["b", "ph_b1"]
    assert store.delete_head("ph_b1") is True  # a derived head alone leaves its base
    assert [h.id for h in store.list_heads()] == ["b"]


def test_a_provider_held_session_reads_back_as_stored(store: Store) -> None:
    store.add_session(held_session())
    got = store.get_session("a_held")
    assert got == held_session() and got is not None and got.provider_held
    assert got.derived_head_id is None and got.map_choice == ()


def test_completion_stores_the_head_and_releases_the_chunks(store: Store) -> None:
    base = base_head()
    store.add_head(base)
    store.add_session(held_session())
    assert store.admit("t_1", [Charge("storage", "", 1000, None)], None, T0) is None
    store.mark_received("a_held", [0, 1], 0, added_bytes=1000)
    assert store.claim_for_compute("a_held")
    head = derived(base, "ph_1", "t_1")
    assert store.complete_provider_held("a_held", head, [("kappa", 0.5), ("lambda", 0.02)], 384) is True
    done = store.get_session("a_held")
    assert done is not None and done.state == AlignmentState.done and done.derived_head_id == "ph_1"
    assert dict(done.map_choice) == {"kappa": 0.5, "lambda": 0.02} and done.stored_bytes == 0
    assert done.computed_columns == 384
    assert store.get_head("ph_1") == head
    assert store.usage("t_1", [""]) == []  # the chunks' bytes went back


def test_completion_stores_nothing_when_the_base_head_or_session_is_gone(store: Store) -> None:
    base = base_head()
    store.add_head(base)
    store.add_session(held_session())
    store.delete_head("sst2")
    assert store.complete_provider_held("a_held", derived(base, "ph_1", "t_1"), [], 384) is False
    assert store.get_head("ph_1") is None
    store.add_head(base)
    assert store.complete_provider_held("a_gone", derived(base, "ph_1", "t_1"), [], 384) is False
    assert store.get_head("ph_1") is None


def test_completion_refuses_a_taken_head_id(store: Store) -> None:
    base = base_head()
    store.add_head(base)
    store.add_session(held_session())
    with pytest.raises(RecordExistsError):
        store.complete_provider_held("a_held", replace(base, base_head_id="sst2"), [], 384)
    got = store.get_session("a_held")
    assert got is not None and got.state == AlignmentState.receiving


OLD_HEAD = (
    "INSERT INTO heads (id, name, task, class_names, dim, num_classes, created_at, weights_blob, bias_blob, "
    "texts, texts_embeddings_blob, encoder_model_id, report) VALUES ('old', 'old', 'sentiment', "
    "'[\"neg\", \"pos\"]', 384, 2, '2026-01-01T00:00:00+00:00', 'w', 'b', '[]', NULL, 'minilm', "
    '\'{"train_examples": 10, "train_accuracy": 0.9}\')'
)
OLD_SESSION = (
    "INSERT INTO sessions (session_id, head_id, corpus_id, key_id, parameter_set, state, num_samples, "
    "feature_dim, samples_per_ciphertext, num_ciphertexts, received, computed_columns, output_columns, "
    "created_at, expires_at, include_head_texts, client_model_id, tenant_id) VALUES ('a_old', 'old', 'wiki', "
    "'k_1', 'ckks-n8192-q200', 'done', 600, 128, 512, 2, '[0, 1]', 384, 384, '2026-01-01T00:00:00+00:00', "
    "'2099-01-01T00:00:00+00:00', false, 'wordllama', 't_1')"
)


def assert_client_held(url: str) -> None:
    store = open_store(url)
    try:
        old = store.get_head("old")
        assert old is not None and old.map_holder == MapHolder.client
        assert old.base_head_id is None and old.tenant_id is None
        session = store.get_session("a_old")
        assert session is not None and not session.provider_held and session.map_method == ""
        assert session.map_params == () and session.map_choice == () and session.derived_head_id is None
    finally:
        store.close()


def test_revision_0002_makes_earlier_heads_and_sessions_client_held(store_url: str) -> None:
    """Rows written at revision 0001 (either database) read as client-held once migrated."""
    engine = create_engine(engines.normalise_url(store_url))
    try:
        with engine.begin() as conn:
            command.upgrade(config(conn), "0001")
            conn.execute(text(OLD_HEAD))
            conn.execute(text(OLD_SESSION))
    finally:
        engine.dispose()
    assert_client_held(store_url)
    engine = create_engine(engines.normalise_url(store_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
    finally:
        engine.dispose()


def test_a_legacy_database_makes_earlier_heads_and_sessions_client_held(tmp_path: Path) -> None:
    """A SQLite database of legacy version 6 is stamped 0001 and then gains the columns of 0002."""
    path = tmp_path / "provider.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS:
        for sql in step.statements:
            conn.execute(sql)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (6)")
    conn.execute(OLD_HEAD)
    conn.execute(OLD_SESSION)
    conn.close()
    assert_client_held(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 6
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    finally:
        conn.close()
