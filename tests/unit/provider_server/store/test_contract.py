"""The contract every Store keeps, run against each database it runs on: SQLite, and PostgreSQL on a
private server (tests/pg_server.py).

Routers and services rely on exactly this behaviour and nothing else; a new database is added to
DATABASES and must pass unchanged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provider_server.store import (
    INTERRUPTED_ERROR,
    JOB_INTERRUPTED_ERROR,
    ApiKeyRecord,
    AuditRecord,
    Bucket,
    ChallengeRecord,
    Charge,
    CorpusRecord,
    Counter,
    HeadRecord,
    JobRecord,
    KeyRecord,
    Quotas,
    RecordExistsError,
    Refusal,
    SessionRecord,
    Store,
    TenantRecord,
    TrainingReport,
    open_store,
)
from provider_server.store.sql import SqlStore
from shared_protocol.messages import AlignmentState, JobState, KeyPurpose, OutputMode

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(params=DATABASES)
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


def head(ident: str = "sst2", minutes: int = 0, texts: tuple[str, ...] = ("a film", "a book")) -> HeadRecord:
    return HeadRecord(
        id=ident,
        name=ident,
        task="sentiment",
        class_names=("negative", "positive"),
        dim=384,
        num_classes=2,
        created_at=T0 + timedelta(minutes=minutes),
        weights_blob="w.npy",
        bias_blob="b.npy",
        texts=texts,
        texts_embeddings_blob="t.npy" if texts else None,
        encoder_model_id="minilm",
        report=TrainingReport(train_examples=100, train_accuracy=0.875),
    )


def corpus(ident: str = "wiki", minutes: int = 0) -> CorpusRecord:
    return CorpusRecord(
        id=ident,
        name=ident,
        size=3,
        sha256="ab" * 32,
        created_at=T0 + timedelta(minutes=minutes),
        texts_blob="texts.json",
        embeddings_blob="y.npy",
        encoder_model_id="minilm",
    )


def key(ident: str = "k_1", client: str = "alice", minutes: int = 0, galois: tuple[int, ...] = ()) -> KeyRecord:
    created = T0 + timedelta(minutes=minutes)
    return KeyRecord(
        key_id=ident,
        client_name=client,
        purpose=KeyPurpose.alignment if galois else KeyPurpose.inference,
        parameter_set="ckks-n8192-q200",
        fingerprint="cd" * 32,
        created_at=created,
        expires_at=created + timedelta(hours=1),
        public_key_blob="pk",
        galois_keys_blob="gk" if galois else None,
        galois_elements=galois,
    )


def session(ident: str = "a_1", num_ciphertexts: int = 64) -> SessionRecord:
    return SessionRecord(
        session_id=ident,
        head_id="sst2",
        corpus_id="wiki",
        key_id="k_1",
        parameter_set="ckks-n8192-q200",
        state=AlignmentState.receiving,
        num_samples=4 * num_ciphertexts,
        feature_dim=384,
        samples_per_ciphertext=4,
        num_ciphertexts=num_ciphertexts,
        received=(),
        computed_columns=0,
        output_columns=384,
        error=None,
        created_at=T0,
        expires_at=T0 + timedelta(hours=6),
        include_head_texts=True,
        client_model_id="wordllama",
        data_scale_bits=None,
        result_blob=None,
        validation_folds=5,
    )


# -- heads and corpora ------------------------------------------------------------------------------


def test_a_head_reads_back_as_stored(store: Store) -> None:
    h = head()
    store.add_head(h)
    got = store.get_head("sst2")
    assert got == h
    assert got is not None and got.created_at.tzinfo is not None and got.texts == ("a film", "a book")


def test_a_head_keeps_its_output_mode(store: Store) -> None:
    assert head().output_mode == OutputMode.logits  # the default: every head before modes answered logits
    store.add_head(replace(head("ranked"), output_mode=OutputMode.ranking))
    store.add_head(head("plain"))
    modes = {h.id: h.output_mode for h in store.list_heads()}
    assert modes == {"ranked": OutputMode.ranking, "plain": OutputMode.logits}
    got = store.get_head("ranked")
    assert got is not None and got.output_mode == OutputMode.ranking


def test_a_head_without_texts_has_no_text_embeddings(store: Store) -> None:
    store.add_head(head(texts=()))
    got = store.get_head("sst2")
    assert got is not None and got.texts == () and got.texts_embeddings_blob is None


def test_heads_list_oldest_first_and_delete_once(store: Store) -> None:
    store.add_head(head("late", minutes=5))
    store.add_head(head("early", minutes=1))
    assert [h.id for h in store.list_heads()] == ["early", "late"]
    assert store.delete_head("early") is True
    assert store.delete_head("early") is False
    assert store.get_head("early") is None and store.get_head("missing") is None
    assert [h.id for h in store.list_heads()] == ["late"]


def test_a_head_name_is_taken_once(store: Store) -> None:
    store.add_head(head())
    with pytest.raises(RecordExistsError):
        store.add_head(replace(head(), task="other"))
    assert store.get_head("sst2") == head()


def test_corpora_round_trip_list_and_delete(store: Store) -> None:
    store.add_corpus(corpus("b", minutes=2))
    store.add_corpus(corpus("a", minutes=3))
    assert store.get_corpus("b") == corpus("b", minutes=2)
    assert [c.id for c in store.list_corpora()] == ["b", "a"]
    with pytest.raises(RecordExistsError):
        store.add_corpus(corpus("a"))
    assert store.delete_corpus("a") is True and store.delete_corpus("a") is False
    assert store.get_corpus("a") is None


# -- keys -----------------------------------------------------------------------------------------


def test_keys_round_trip_with_and_without_galois_keys(store: Store) -> None:
    plain, packed = key("k_1"), key("k_2", galois=(4097, 2049, 1025))
    store.add_key(plain)
    store.add_key(packed)
    assert store.get_key("k_1") == plain
    assert store.get_key("k_2") == packed
    with pytest.raises(RecordExistsError):
        store.add_key(plain)


def test_revoked_keys_are_kept_but_not_listed(store: Store) -> None:
    store.add_key(key("k_b2", client="bob", minutes=2))
    store.add_key(key("k_a", client="alice", minutes=9))
    store.add_key(key("k_b1", client="bob", minutes=1))
    assert [k.key_id for k in store.list_keys()] == ["k_a", "k_b1", "k_b2"]
    assert store.revoke_key("k_b1") is True
    assert store.revoke_key("k_b1") is False and store.revoke_key("k_missing") is False
    revoked = store.get_key("k_b1")
    assert revoked is not None and revoked.revoked
    assert [k.key_id for k in store.list_keys()] == ["k_a", "k_b2"]


# -- key challenges -------------------------------------------------------------------------------


def challenge(ident: str = "c_1", minutes: int = 0) -> ChallengeRecord:
    created = T0 + timedelta(minutes=minutes)
    return ChallengeRecord(
        challenge_id=ident,
        seed=bytes(range(32)),
        created_at=created,
        expires_at=created + timedelta(minutes=5),
        tenant_id="t_1",
    )


def test_a_challenge_is_taken_once(store: Store) -> None:
    store.add_challenge(challenge())
    with pytest.raises(RecordExistsError):
        store.add_challenge(challenge())
    first = store.take_challenge("c_1", "t_1")
    assert first == challenge()  # as issued: seed bytes and times round-trip, not yet used
    again = store.take_challenge("c_1", "t_1")
    assert again == replace(challenge(), used=True)
    assert store.take_challenge("c_missing", "t_1") is None


def test_concurrent_registrations_take_a_challenge_once(store: Store) -> None:
    store.add_challenge(challenge())
    barrier = threading.Barrier(8)
    seen: list[bool] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            barrier.wait()
            got = store.take_challenge("c_1", "t_1")
            assert got is not None
            seen.append(got.used)
        except BaseException as exc:  # surfaced below: a failed thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(seen) == [False] + [True] * 7


def test_expired_challenges_are_pruned(store: Store) -> None:
    store.add_challenge(challenge("c_old", minutes=0))
    store.add_challenge(challenge("c_new", minutes=10))
    assert store.prune_challenges(T0 + timedelta(minutes=6)) == 1
    assert store.take_challenge("c_old", "t_1") is None
    assert store.take_challenge("c_new", "t_1") is not None


def test_a_challenge_is_taken_only_by_its_tenant(store: Store) -> None:
    store.add_challenge(challenge())
    assert store.take_challenge("c_1", "t_other") is None, "another tenant's challenge reads as unknown"
    first = store.take_challenge("c_1", "t_1")
    assert first is not None and not first.used, "a foreign attempt must not spend the challenge"


# -- alignment sessions ---------------------------------------------------------------------------


def test_a_session_reads_back_as_stored(store: Store) -> None:
    s = session()
    store.add_session(s)
    assert store.get_session("a_1") == s
    assert store.get_session("a_missing") is None
    with pytest.raises(RecordExistsError):
        store.add_session(s)


def test_mark_received_merges_indices_and_sets_the_scale(store: Store) -> None:
    store.add_session(session(num_ciphertexts=8))
    first = store.mark_received("a_1", [4, 5], 25)
    assert first is not None and first.received == (4, 5) and first.data_scale_bits == 25
    second = store.mark_received("a_1", range(0, 5), 25)
    assert second is not None and second.received == (0, 1, 2, 3, 4, 5)
    assert second.missing == [6, 7]
    assert store.mark_received("a_missing", [0], 25) is None


def test_concurrent_chunk_uploads_lose_no_index(store: Store) -> None:
    store.add_session(session(num_ciphertexts=64))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def upload(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(worker, 64, 8):
                store.mark_received("a_1", [i], 25)
        except BaseException as exc:  # surfaced below: a failed thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = store.get_session("a_1")
    assert got is not None and got.received == tuple(range(64)) and got.missing == []


def test_compute_is_claimed_once_and_progresses_to_done(store: Store) -> None:
    store.add_session(session())
    assert store.claim_for_compute("a_1") is True
    assert store.claim_for_compute("a_1") is False, "a computing session was claimed twice"
    assert store.claim_for_compute("a_missing") is False
    store.add_computed_columns("a_1", 128)
    store.add_computed_columns("a_1", 64)
    running = store.get_session("a_1")
    assert running is not None and running.state == AlignmentState.computing and running.computed_columns == 192
    store.complete_session("a_1", "result.frame", 384)
    done = store.get_session("a_1")
    assert done is not None and done.state == AlignmentState.done
    assert done.result_blob == "result.frame" and done.computed_columns == 384
    assert store.claim_for_compute("a_1") is False, "a finished session was claimed again"


def test_a_failed_session_can_be_claimed_again(store: Store) -> None:
    store.add_session(session())
    assert store.claim_for_compute("a_1")
    store.add_computed_columns("a_1", 64)
    store.fail_session("a_1", "computation failed: boom")
    failed = store.get_session("a_1")
    assert failed is not None and failed.state == AlignmentState.failed and failed.error == "computation failed: boom"
    assert store.claim_for_compute("a_1") is True
    again = store.get_session("a_1")
    assert again is not None and again.state == AlignmentState.computing
    assert again.error is None and again.computed_columns == 0


def test_a_restart_fails_only_computing_sessions(store: Store) -> None:
    store.add_session(session("a_running"))
    store.add_session(session("a_waiting"))
    store.claim_for_compute("a_running")
    assert store.interrupt_running_sessions() == 1
    running, waiting = store.get_session("a_running"), store.get_session("a_waiting")
    assert running is not None and running.state == AlignmentState.failed and running.error == INTERRUPTED_ERROR
    assert waiting is not None and waiting.state == AlignmentState.receiving and waiting.error is None
    assert store.interrupt_running_sessions() == 0


def test_a_live_lease_keeps_a_computation_with_its_replica(store: Store) -> None:
    """Replica r1 holds the computation until its lease ends: r2 cannot claim it before then, and
    r1's heartbeat moves the end; once it has passed (r1 died), r2 claims it and r1 can neither renew
    nor finish or fail it (a late result of a lost replica must not overwrite the new holder's)."""
    store.add_session(session())
    lease = T0 + timedelta(seconds=30)
    assert store.claim_for_compute("a_1", "r1", lease, T0)
    held = store.get_session("a_1")
    assert held is not None and held.compute_owner == "r1" and held.lease_expires_at == lease
    assert not store.claim_for_compute("a_1", "r2", T0 + timedelta(seconds=60), T0 + timedelta(seconds=10))
    assert store.renew_lease("a_1", "r1", T0 + timedelta(seconds=60))
    assert not store.renew_lease("a_1", "r2", T0 + timedelta(seconds=90)), "a replica renewed a lease it never held"
    assert not store.claim_for_compute("a_1", "r2", T0 + timedelta(seconds=90), T0 + timedelta(seconds=45))
    store.add_computed_columns("a_1", 64, owner="r1")
    later = T0 + timedelta(seconds=61)
    assert store.claim_for_compute("a_1", "r2", later + timedelta(seconds=30), later), "an expired lease held on"
    taken = store.get_session("a_1")
    assert taken is not None and taken.compute_owner == "r2" and taken.computed_columns == 0
    assert not store.renew_lease("a_1", "r1", later + timedelta(seconds=30))
    store.add_computed_columns("a_1", 64, owner="r1")
    assert not store.fail_session("a_1", "r1 lost it", owner="r1")
    assert not store.complete_session("a_1", "late.frame", 384, owner="r1")
    still = store.get_session("a_1")
    assert still is not None and still.state == AlignmentState.computing and still.computed_columns == 0
    assert store.complete_session("a_1", "result.frame", 384, owner="r2")
    done = store.get_session("a_1")
    assert done is not None and done.state == AlignmentState.done and done.result_blob == "result.frame"
    assert not store.claim_for_compute("a_1", "r3", later + timedelta(days=1), later + timedelta(hours=1))


def test_only_the_holder_fails_its_computation(store: Store) -> None:
    store.add_session(session())
    assert store.claim_for_compute("a_1", "r1", T0 + timedelta(seconds=30), T0)
    assert not store.fail_session("a_1", "boom", owner="r2")
    assert store.fail_session("a_1", "boom", owner="r1")
    failed = store.get_session("a_1")
    assert failed is not None and failed.state == AlignmentState.failed and failed.error == "boom"


def test_a_restarting_replica_interrupts_only_its_own_and_expired_computations(store: Store) -> None:
    """A replica starting up fails the computations it held before (it restarted under the same id)
    and those whose lease has expired; another live replica's computation is left alone."""
    for sid in ("a_mine", "a_live", "a_dead", "a_waiting"):
        store.add_session(session(sid))
    store.claim_for_compute("a_mine", "r1", T0 + timedelta(seconds=30), T0)
    store.claim_for_compute("a_live", "r2", T0 + timedelta(seconds=30), T0)
    store.claim_for_compute("a_dead", "r3", T0 + timedelta(seconds=5), T0)
    now = T0 + timedelta(seconds=10)
    assert store.interrupt_running_sessions(owner="r1") == 1
    assert store.interrupt_running_sessions(expired_before=now) == 1
    assert store.interrupt_running_sessions(expired_before=now, session_id="a_live") == 0
    states = {sid: store.get_session(sid) for sid in ("a_mine", "a_live", "a_dead", "a_waiting")}
    assert {sid: s.state for sid, s in states.items() if s is not None} == {
        "a_mine": AlignmentState.failed,
        "a_live": AlignmentState.computing,
        "a_dead": AlignmentState.failed,
        "a_waiting": AlignmentState.receiving,
    }
    assert states["a_dead"] is not None and states["a_dead"].error == INTERRUPTED_ERROR
    assert store.claim_for_compute("a_dead", "r2", now + timedelta(seconds=30), now), "an interrupted one resumes"


def test_one_of_two_replicas_claims_an_expired_computation(store: Store) -> None:
    store.add_session(session())
    assert store.claim_for_compute("a_1", "r1", T0 + timedelta(seconds=5), T0)
    now = T0 + timedelta(seconds=10)
    barrier = threading.Barrier(2)
    won: list[str] = []

    def claim(owner: str) -> None:
        barrier.wait()
        if store.claim_for_compute("a_1", owner, now + timedelta(seconds=30), now):
            won.append(owner)

    threads = [threading.Thread(target=claim, args=(o,)) for o in ("r2", "r3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = store.get_session("a_1")
    assert len(won) == 1 and got is not None and got.compute_owner == won[0]


def test_sessions_are_deleted_once(store: Store) -> None:
    store.add_session(session())
    assert store.delete_session("a_1") is True
    assert store.delete_session("a_1") is False
    assert store.get_session("a_1") is None


def test_a_session_knows_its_packing_layout() -> None:
    layout = session(num_ciphertexts=10).layout
    assert (layout.n, layout.feature_dim, layout.num_samples, layout.stride_bits) == (8192, 384, 40, 2)
    assert layout.samples_per_ciphertext == 4 and layout.num_ciphertexts == 10


# -- tenants and API keys ---------------------------------------------------------------------------


def tenant(ident: str = "t_1", name: str = "acme", minutes: int = 0) -> TenantRecord:
    return TenantRecord(tenant_id=ident, name=name, created_at=T0 + timedelta(minutes=minutes))


def test_tenants_round_trip_and_update(store: Store) -> None:
    store.add_tenant(tenant("t_2", "beta", minutes=2))
    store.add_tenant(tenant("t_1", "acme", minutes=1))
    assert store.get_tenant("t_1") == tenant("t_1", "acme", minutes=1)
    assert store.get_tenant("t_missing") is None
    assert [t.tenant_id for t in store.list_tenants()] == ["t_1", "t_2"]
    with pytest.raises(RecordExistsError):
        store.add_tenant(tenant("t_3", "acme"))  # names are unique too
    quotas = Quotas(queries_per_day=10, alignments_per_day=2, storage_bytes=1000, rate_per_second=0.5, rate_burst=3)
    updated = store.update_tenant("t_1", quotas=quotas)
    assert updated is not None and updated.quotas == quotas and not updated.disabled
    disabled = store.update_tenant("t_1", disabled=True)
    assert disabled is not None and disabled.disabled and disabled.quotas == quotas
    assert store.update_tenant("t_1", quotas=Quotas()) == replace(tenant("t_1", minutes=1), disabled=True)
    assert store.update_tenant("t_missing", disabled=True) is None


def test_api_keys_belong_to_their_tenant(store: Store) -> None:
    store.add_tenant(tenant("t_1", "acme"))
    store.add_tenant(tenant("t_2", "beta"))
    k = ApiKeyRecord(key_id="ak1", tenant_id="t_1", secret_sha256="ef" * 32, created_at=T0)
    store.add_api_key(k)
    with pytest.raises(RecordExistsError):
        store.add_api_key(k)
    assert store.get_api_key("ak1") == k and store.get_api_key("ak_missing") is None
    assert store.list_api_keys("t_1") == [k] and store.list_api_keys("t_2") == []
    assert store.revoke_api_key("t_2", "ak1") is False, "a tenant revokes only its own keys"
    assert store.revoke_api_key("t_1", "ak1") is True
    assert store.revoke_api_key("t_1", "ak1") is False
    assert store.get_api_key("ak1") == replace(k, revoked=True)


def test_records_keep_their_owner_and_stored_bytes(store: Store) -> None:
    k = replace(key("k_1"), tenant_id="t_1", stored_bytes=123)
    c = replace(challenge(), tenant_id="t_1")
    s = replace(session(), tenant_id="t_1", stored_bytes=456)
    store.add_key(k)
    store.add_challenge(c)
    store.add_session(s)
    assert store.get_key("k_1") == k and store.get_session("a_1") == s
    assert store.take_challenge("c_1", "t_1") == c


# -- usage, quotas and rate limits ------------------------------------------------------------------

DAY = "2026-03-01"


def counters(store: Store, tenant_id: str = "t_1") -> dict[tuple[str, str], int]:
    return {(c.counter, c.period): c.value for c in store.usage(tenant_id, [DAY, ""])}


def test_admit_charges_every_counter_or_none(store: Store) -> None:
    q = Charge("queries:sst2", DAY, 3, limit=5)
    a = Charge("alignments", DAY, 1, limit=1)
    assert store.admit("t_1", [q], None, T0) is None
    assert store.admit("t_1", [Charge("queries:sst2", DAY, 3, limit=5)], None, T0) == Refusal("queries:sst2")
    assert counters(store) == {("queries:sst2", DAY): 3}, "a refused admission charges nothing"
    assert store.admit("t_1", [a, Charge("queries:sst2", DAY, 3, limit=5)], None, T0) == Refusal("queries:sst2")
    assert counters(store) == {("queries:sst2", DAY): 3}, "no charge of a refused admission is kept"
    assert store.admit("t_1", [Charge("queries:sst2", DAY, 2, limit=5), a], None, T0) is None
    assert counters(store) == {("queries:sst2", DAY): 5, ("alignments", DAY): 1}
    assert store.admit("t_1", [Charge("queries:sst2", "2026-03-02", 5, limit=5)], None, T0) is None, "a new day"
    assert store.admit("t_2", [Charge("queries:sst2", DAY, 5, limit=5)], None, T0) is None, "another tenant"
    assert store.admit("t_1", [Charge("storage", "", 10**12, limit=None)], None, T0) is None, "no limit"
    assert [c for c in store.usage("t_1", [DAY]) if c.counter == "alignments"] == [Counter("alignments", DAY, 1)]


def test_refund_gives_back_and_never_goes_below_zero(store: Store) -> None:
    before = counters(store)
    charge = Charge("storage", "", 100, limit=1000)
    assert store.admit("t_1", [charge], None, T0) is None
    store.refund("t_1", [charge])
    assert counters(store) == before
    store.refund("t_1", [charge])
    assert counters(store) == before and store.usage("t_1", [""]) == []


def test_the_token_bucket_refills_with_time(store: Store) -> None:
    bucket = Bucket("classify", rate_per_second=2.0, burst=3)
    charge = Charge("queries:sst2", DAY, 1, limit=None)
    for _ in range(3):
        assert store.admit("t_1", [charge], bucket, T0) is None
    refused = store.admit("t_1", [charge], bucket, T0)
    assert refused is not None and refused.name == "classify"
    assert refused.wait_seconds == pytest.approx(0.5)
    assert counters(store) == {("queries:sst2", DAY): 3}, "a request refused by the bucket charges nothing"
    assert store.admit("t_1", [charge], bucket, T0 + timedelta(seconds=0.25)) is not None
    assert store.admit("t_1", [charge], bucket, T0 + timedelta(seconds=0.5)) is None
    assert store.admit("t_1", [charge], Bucket("create", 2.0, 3), T0) is None, "buckets are separate"
    assert store.admit("t_2", [charge], bucket, T0) is None, "tenants are separate"
    later = T0 + timedelta(hours=1)
    for _ in range(3):  # refilled to the burst, not beyond
        assert store.admit("t_1", [], bucket, later) is None
    assert store.admit("t_1", [], bucket, later) is not None


def test_a_refused_counter_spends_no_token(store: Store) -> None:
    bucket = Bucket("classify", rate_per_second=1.0, burst=1)
    assert store.admit("t_1", [Charge("alignments", DAY, 2, limit=1)], bucket, T0) == Refusal("alignments")
    assert store.admit("t_1", [Charge("alignments", DAY, 1, limit=1)], bucket, T0) is None


def test_concurrent_admissions_never_exceed_a_limit(store: Store) -> None:
    barrier = threading.Barrier(8)
    admitted: list[bool] = []
    errors: list[BaseException] = []

    def admit() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                admitted.append(store.admit("t_1", [Charge("queries:sst2", DAY, 1, limit=17)], None, T0) is None)
        except BaseException as exc:  # surfaced below: a failed thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=admit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert admitted.count(True) == 17 and counters(store) == {("queries:sst2", DAY): 17}


def test_removing_a_key_or_session_releases_its_storage(store: Store) -> None:
    assert store.admit("t_1", [Charge("storage", "", 1000, limit=None)], None, T0) is None
    store.add_key(replace(key("k_1"), tenant_id="t_1", stored_bytes=300))
    store.add_session(replace(session(), tenant_id="t_1", stored_bytes=0))
    updated = store.mark_received("a_1", [0, 1], 25, added_bytes=700)
    assert updated is not None and updated.stored_bytes == 700
    assert store.claim_for_compute("a_1")
    store.complete_session("a_1", "result.frame", 384, result_bytes=50)
    done = store.get_session("a_1")
    assert done is not None and done.stored_bytes == 50
    assert counters(store) == {("storage", ""): 350}, "a finished session holds its result, not its chunks"
    assert store.revoke_key("k_1")
    assert counters(store) == {("storage", ""): 50}
    assert not store.revoke_key("k_1")
    assert counters(store) == {("storage", ""): 50}, "a key is released once"
    assert store.delete_session("a_1")
    assert counters(store) == {}


# -- audit log ------------------------------------------------------------------------------------


def test_the_audit_log_appends_and_pages(store: Store) -> None:
    lines = [
        AuditRecord(tenant_id="t_1", action="classify", at=T0, count=3, subject="sst2", request_id="r1"),
        AuditRecord(tenant_id="t_2", action="key.registered", at=T0, subject="inference"),
        AuditRecord(tenant_id="t_1", action="alignment.created", at=T0 + timedelta(seconds=1), subject="sst2"),
        AuditRecord(tenant_id=None, action="tenant.created", at=T0, actor="admin"),
    ]
    stored = [store.append_audit(line) for line in lines]
    seqs = [s.seq for s in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and all(s > 0 for s in seqs)
    assert [replace(s, seq=0) for s in stored] == lines
    assert store.list_audit(None, 0, 100) == stored
    assert store.list_audit("t_1", 0, 100) == [stored[0], stored[2]]
    assert store.list_audit(None, seqs[0], 2) == stored[1:3]
    assert store.list_audit("t_1", seqs[2], 100) == []
    assert not hasattr(store, "delete_audit") and not hasattr(store, "update_audit")


# -- the factory ----------------------------------------------------------------------------------


def test_the_database_url_selects_the_store(tmp_path: Path, pg_url: str) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'nested' / 'provider.db'}")
    try:
        assert isinstance(s, SqlStore) and s.dialect == "sqlite"
    finally:
        s.close()
    assert (tmp_path / "nested" / "provider.db").exists()
    for url in (pg_url, pg_url.replace("postgresql+psycopg://", "postgresql://")):
        s = open_store(url)
        try:
            assert isinstance(s, SqlStore) and s.dialect == "postgresql"
        finally:
            s.close()
    for url in ("mysql://localhost/helix", "postgresql+psycopg2://u:secret@localhost/helix", "provider.db"):
        with pytest.raises(ValueError, match="unsupported database URL") as info:
            open_store(url)
        assert "secret" not in str(info.value), "a password in a refused URL must not reach the logs"


# -- retention ------------------------------------------------------------------------------------


def test_all_keys_include_revoked_ones_and_are_deleted_once(store: Store) -> None:
    store.add_key(key("k_late", minutes=5))
    store.add_key(key("k_early", minutes=1))
    store.revoke_key("k_late")
    assert [k.key_id for k in store.all_keys()] == ["k_early", "k_late"]
    assert store.delete_key("k_late") is True
    assert store.delete_key("k_late") is False
    assert store.get_key("k_late") is None
    assert [k.key_id for k in store.all_keys()] == ["k_early"]


def test_every_session_is_listed(store: Store) -> None:
    assert store.list_sessions() == []
    store.add_session(session("a_1"))
    store.add_session(session("a_2"))
    assert sorted(s.session_id for s in store.list_sessions()) == ["a_1", "a_2"]


# -- several processes ----------------------------------------------------------------------------


def test_admissions_from_several_processes_never_exceed_a_limit(store: Store, store_url: str) -> None:
    """Replicas share one database: the limit holds across processes, not only across threads."""
    from tests.unit.provider_server.store.store_processes import run_together

    admitted = run_together(4, store_url, "admit", "12", "29")
    assert sum(int(n) for n in admitted) == 29
    assert counters(store) == {("queries:sst2", DAY): 29}


# -- admin jobs ----------------------------------------------------------------------------------


def job(ident: str = "job_1", minutes: int = 0, kind: str = "head_training", head_id: str = "sst2") -> JobRecord:
    return JobRecord(
        job_id=ident,
        kind=kind,
        state=JobState.queued,
        head_id=head_id,
        created_at=T0 + timedelta(minutes=minutes),
        timeout_seconds=1800.0,
    )


def test_a_job_reads_back_as_stored_and_lists_newest_first(store: Store) -> None:
    for i in range(3):
        assert store.add_job(job(f"job_{i}", minutes=i), max_active=10)
    assert store.get_job("job_1") == job("job_1", minutes=1)
    assert store.get_job("job_x") is None
    assert [j.job_id for j in store.list_jobs(2)] == ["job_2", "job_1"]
    with pytest.raises(RecordExistsError):
        store.add_job(job("job_0"), max_active=10)


def test_jobs_are_bounded_by_the_active_ones_of_their_kind(store: Store) -> None:
    assert store.add_job(job("job_1"), max_active=2) and store.add_job(job("job_2"), max_active=2)
    assert not store.add_job(job("job_3"), max_active=2)
    assert store.get_job("job_3") is None
    assert store.add_job(job("other", kind="another_kind"), max_active=2)
    assert store.start_job("job_1", T0) and store.fail_job("job_1", T0, "training_failed", "it broke")
    assert store.add_job(job("job_3"), max_active=2)


def test_concurrent_submissions_never_exceed_the_bound(store: Store) -> None:
    accepted: list[bool] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        ok = store.add_job(job(f"job_{i}", minutes=i), max_active=3)
        with lock:
            accepted.append(ok)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted.count(True) == 3
    assert sum(1 for j in store.list_jobs(100) if j.active) == 3


def test_a_job_runs_then_succeeds_with_its_head_in_one_step(store: Store) -> None:
    store.add_job(job(), max_active=1)
    assert store.start_job("job_1", T0) and not store.start_job("job_1", T0), "started once"
    store.set_job_pid("job_1", 4321)
    running = store.get_job("job_1")
    assert running is not None and running.state == JobState.running and running.pid == 4321
    assert running.started_at == T0
    assert store.complete_job("job_1", T0 + timedelta(seconds=5), head(), 5.0)
    done = store.get_job("job_1")
    assert done is not None and done.state == JobState.succeeded and done.pid is None and done.seconds == 5.0
    assert done.finished_at == T0 + timedelta(seconds=5)
    assert store.get_head("sst2") == head()
    assert not store.fail_job("job_1", T0, "x", "y"), "a finished job stays as it finished"


def test_a_cancelled_job_stores_no_head(store: Store) -> None:
    store.add_job(job(), max_active=1)
    store.start_job("job_1", T0)
    result = store.cancel_job("job_1", T0, "cancelled by the admin")
    assert result is not None
    cancelled, changed = result
    assert changed and cancelled.state == JobState.cancelled and cancelled.error == "cancelled by the admin"
    assert not store.complete_job("job_1", T0, head(), 1.0)
    assert store.get_head("sst2") is None
    again = store.cancel_job("job_1", T0, "again")
    assert again is not None and again[1] is False and again[0].error == "cancelled by the admin"
    assert store.cancel_job("job_x", T0, "nobody") is None
    assert not store.fail_job("job_1", T0, "training_failed", "too late"), "cancelled stays cancelled"


def test_a_queued_job_cancelled_never_starts(store: Store) -> None:
    store.add_job(job(), max_active=1)
    store.cancel_job("job_1", T0, "cancelled")
    assert not store.start_job("job_1", T0)


def test_completing_a_job_for_a_taken_name_changes_nothing(store: Store) -> None:
    store.add_head(head())
    store.add_job(job(), max_active=1)
    store.start_job("job_1", T0)
    with pytest.raises(RecordExistsError):
        store.complete_job("job_1", T0, replace(head(), task="another"), 1.0)
    still = store.get_job("job_1")
    assert still is not None and still.state == JobState.running
    assert store.get_head("sst2") == head()


def test_a_restart_fails_queued_and_running_jobs_only(store: Store) -> None:
    for ident in ("queued", "running", "done"):
        store.add_job(job(ident), max_active=10)
    store.start_job("running", T0)
    store.start_job("done", T0)
    store.complete_job("done", T0, head(), 1.0)
    assert store.interrupt_running_jobs() == 2
    for ident in ("queued", "running"):
        failed = store.get_job(ident)
        assert failed is not None and failed.state == JobState.failed and failed.error == JOB_INTERRUPTED_ERROR
    finished = store.get_job("done")
    assert finished is not None and finished.state == JobState.succeeded
