"""Secure alignment sessions: the client streams Enc(X_aug) in chunks, the provider computes
Enc(X_aug^T Y_A) against its plaintext embeddings of the same public texts, the client fetches it.

The provider learns nothing about X (it only ever holds ciphertexts under the client's key); the
client learns X_aug^T Y_A, which is what the paper's protocol reveals, and nothing else: every
other coefficient of each reply is uniformly random. Results are packed m columns per ciphertext
with the Galois keys registered with the alignment key (`helix_he.cross_covariance`).

Because the client chooses X, it chooses which D + 1 linear functionals of each column of Y_A it
learns (with X = identity and D = n, Y_A itself). Every session therefore needs n >= 2 (D + 1)
samples, the factor of `shared_protocol.folds`: each column keeps at least half of its n degrees
of freedom hidden, whatever X is.

A provider-held session (the head's `map_holder` allowing it) takes X in plaintext row blocks instead
and ends in a head derived for the tenant, the map folded in (`held_map`); it needs no key."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from helix_he.context import CiphertextError
from helix_he.packing import CrossCovarianceLayout
from helix_he.params import get_parameter_set
from helix_shards import ShardExecutor
from shared_protocol.folds import MIN_SAMPLES_PER_REVEALED_VALUE, fold_disclosure_error
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentState,
    EmbeddingChunkHeader,
    KeyPurpose,
    MapHolder,
)

from ..blobs import BlobStore
from ..clock import utcnow
from ..errors import BadRequest, Conflict, Gone, Unknown, Unprocessable
from ..session_files import SessionFiles
from ..settings import ProviderSettings
from ..store import SessionRecord, Store, TenantRecord
from ..tasks import BackgroundTasks
from ..workers.jobs import ValidateChunkJob
from ..workers.pool import HePool
from .alignment_compute import AlignmentComputation
from .audit import AuditLog
from .compute_lease import ComputeLease, lease_expired
from .held_map import BlockLayout, HeldMapComputation, check_blocks, check_map_method, refuse_derived_base
from .keys import KeyService
from .metering import Metering


def disclosure_error(num_samples: int, feature_dim: int) -> str | None:
    """Why a session of `num_samples` would reveal too much of the provider's embeddings to a client
    of dimension `feature_dim`, or None: its X^T Y and 1^T Y are D + 1 chosen linear functionals
    of each column of Y, so n must be at least MIN_SAMPLES_PER_REVEALED_VALUE times that."""
    revealed = feature_dim + 1
    needed = MIN_SAMPLES_PER_REVEALED_VALUE * revealed
    if num_samples < needed:
        return (
            f"{num_samples} samples are too few for feature_dim {feature_dim}: the result reveals {revealed} linear "
            f"functionals of each of the provider's embedding columns, so a session needs at least {needed} "
            f"samples (n >= {MIN_SAMPLES_PER_REVEALED_VALUE}(D + 1)); use a larger corpus, include the head's texts, "
            "or a smaller embedding dimension"
        )
    return None


class AlignmentService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        settings: ProviderSettings,
        keys: KeyService,
        pool: HePool,
        tasks: BackgroundTasks,
        meter: Metering,
        audit: AuditLog,
        executor: ShardExecutor | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._keys = keys
        self._pool = pool
        self._tasks = tasks
        self._meter = meter
        self._audit = audit
        self._executor = executor
        self._files = SessionFiles(settings.data_dir / "sessions")

    def create(self, tenant: TenantRecord, body: AlignmentCreate) -> SessionRecord:
        """A new session of this tenant in the layout both parties derive from the key (or, provider-held,
        the block size) and the sample count; it is one of the tenant's sessions of the day and takes a
        creation token."""
        if body.map_holder == MapHolder.either:
            raise Unprocessable("invalid_request", "map_holder of an alignment is client or provider, not either")
        head = self._store.get_head(body.head_id)
        if head is None or not head.visible_to(tenant.tenant_id):
            raise Unknown("head", body.head_id)
        refuse_derived_base(head)
        if not head.map_holder.offers(body.map_holder):
            raise Unprocessable(
                "map_holder_not_offered",
                f"head {head.id!r} offers only {head.map_holder.value}-held maps (its map_holder), "
                f"not {body.map_holder.value}-held ones",
            )
        corpus = self._store.get_corpus(body.corpus_id)
        if corpus is None:
            raise Unknown("corpus", body.corpus_id)
        if body.corpus_sha256 != corpus.sha256:
            raise Conflict(
                "corpus_mismatch",
                f"corpus {body.corpus_id!r} has sha256 {corpus.sha256}, the client "
                f"embedded {body.corpus_sha256}: fetch the texts again",
            )
        num_samples = corpus.size + (len(head.texts) if body.include_head_texts else 0)
        if body.map_holder == MapHolder.provider:
            session = self._provider_held_session(tenant, body, num_samples, head.dim)
        else:
            session = self._client_held_session(tenant, body, num_samples, head.dim)
        admission = self._meter.admit_creation(tenant, alignment=True)
        try:
            self._store.add_session(session)
        except BaseException:
            self._meter.refund(admission)
            raise
        self._audit.record(tenant.tenant_id, "alignment.created", subject=head.id, count=num_samples)
        return session

    def _client_held_session(
        self, tenant: TenantRecord, body: AlignmentCreate, num_samples: int, output_columns: int
    ) -> SessionRecord:
        if body.map_method is not None or body.map_params:
            raise Unprocessable(
                "invalid_map_method", "map_method and map_params apply to provider-held alignments only"
            )
        if body.key_id is None:
            raise Unprocessable("key_required", "a client-held alignment needs key_id: the alignment key")
        key = self._keys.usable(body.key_id, KeyPurpose.alignment, tenant.tenant_id)
        self._check_sample_count(num_samples)
        n = get_parameter_set(key.parameter_set).poly_modulus_degree
        if body.feature_dim > n:
            raise Unprocessable(
                "feature_dim_too_large", f"feature_dim {body.feature_dim} exceeds the ring dimension {n}"
            )
        error = disclosure_error(num_samples, body.feature_dim)
        if error is not None:
            raise Unprocessable("too_few_samples", error)
        if not key.galois_keys_blob:
            raise Unprocessable(
                "galois_keys_required",
                f"key {body.key_id!r} carries no Galois keys; alignment keys must (see POST /v1/keys, galois_elements)",
            )
        layout = CrossCovarianceLayout.for_key(n, body.feature_dim, num_samples, len(key.galois_elements))
        folds = self._folds(body, num_samples)
        created = utcnow()
        return SessionRecord(
            session_id="a_" + secrets.token_hex(12),
            head_id=body.head_id,
            corpus_id=body.corpus_id,
            key_id=body.key_id,
            parameter_set=key.parameter_set,
            state=AlignmentState.receiving,
            num_samples=num_samples,
            feature_dim=body.feature_dim,
            samples_per_ciphertext=layout.samples_per_ciphertext,
            num_ciphertexts=layout.num_ciphertexts,
            received=(),
            computed_columns=0,
            output_columns=output_columns,
            error=None,
            created_at=created,
            expires_at=min(created + timedelta(seconds=self._settings.session_ttl_seconds), key.expires_at),
            include_head_texts=body.include_head_texts,
            client_model_id=body.client_model_id,
            data_scale_bits=None,
            result_blob=None,
            validation_folds=folds,
            tenant_id=tenant.tenant_id,
        )

    def _provider_held_session(
        self, tenant: TenantRecord, body: AlignmentCreate, num_samples: int, output_columns: int
    ) -> SessionRecord:
        """No key: X arrives in plaintext row blocks. The same sample floor as a client-held session
        applies: the derived head's outputs are linear in X^T Y, so a client that can query it chose
        which functionals of Y it sees, as it would with the map."""
        s = self._settings
        if body.key_id is not None or body.validation_folds:
            raise Unprocessable(
                "invalid_request",
                "a provider-held alignment takes no key_id and no validation_folds (the provider solves the map)",
            )
        method, params = check_map_method(body)
        self._check_sample_count(num_samples)
        largest = max(get_parameter_set(p).poly_modulus_degree for p in s.parameter_sets)
        if body.feature_dim > largest:
            raise Unprocessable(
                "feature_dim_too_large",
                f"feature_dim {body.feature_dim} exceeds the largest ring dimension {largest}: the derived head "
                "could not be evaluated",
            )
        error = disclosure_error(num_samples, body.feature_dim)
        if error is not None:
            raise Unprocessable("too_few_samples", error)
        blocks = BlockLayout.for_session(num_samples, body.feature_dim, s.max_ciphertext_bytes)
        created = utcnow()
        return SessionRecord(
            session_id="a_" + secrets.token_hex(12),
            head_id=body.head_id,
            corpus_id=body.corpus_id,
            key_id="",
            parameter_set="",
            state=AlignmentState.receiving,
            num_samples=num_samples,
            feature_dim=body.feature_dim,
            samples_per_ciphertext=blocks.rows,
            num_ciphertexts=blocks.blocks,
            received=(),
            computed_columns=0,
            output_columns=output_columns,
            error=None,
            created_at=created,
            expires_at=created + timedelta(seconds=s.session_ttl_seconds),
            include_head_texts=body.include_head_texts,
            client_model_id=body.client_model_id,
            data_scale_bits=None,
            result_blob=None,
            tenant_id=tenant.tenant_id,
            map_holder=MapHolder.provider,
            map_method=method,
            map_params=params,
        )

    def get(self, session_id: str, tenant_id: str) -> SessionRecord:
        """The session if it is this tenant's; another tenant's answers exactly like an unknown one.
        A computation whose replica stopped renewing its lease is reported (and recorded) as
        interrupted, so the client knows to POST .../compute again."""
        session = self._store.get_session(session_id)
        if session is None or session.tenant_id != tenant_id:
            raise Unknown("alignment_session", session_id)
        now = utcnow()
        if session.state == AlignmentState.computing and lease_expired(session, now):
            self._store.interrupt_running_sessions(session_id=session_id, expired_before=now)
            session = self._store.get_session(session_id)
            if session is None:
                raise Unknown("alignment_session", session_id)
        return session

    def receiving(self, session_id: str, tenant_id: str, holder: MapHolder = MapHolder.client) -> SessionRecord:
        """The session, if it may take a chunk of this kind now (live, receiving, of the map holder the
        upload is for, its key still usable); the chunk's frame is read only after this, with the
        session's ciphertext (or block) count as the limit."""
        session = self._live(session_id, tenant_id)
        if session.state != AlignmentState.receiving:
            raise Conflict(
                "session_not_receiving", f"session is {session.state.value}; chunks are accepted only while receiving"
            )
        if session.map_holder != holder:
            expected = "PUT .../embeddings" if session.provider_held else "PUT .../chunks"
            raise Conflict(
                "wrong_upload",
                f"the session is {session.map_holder.value}-held: its data is uploaded with {expected}",
            )
        if not session.provider_held:
            self._keys.usable(session.key_id, KeyPurpose.alignment, tenant_id)
        return session

    async def add_embeddings(
        self, tenant: TenantRecord, session: SessionRecord, header: EmbeddingChunkHeader, blocks: list[bytes]
    ) -> SessionRecord:
        """Check and store row blocks [start, start + count) of a provider-held session's X; their
        bytes are admitted to the tenant's storage like ciphertext chunks."""
        if header.count != len(blocks):
            raise BadRequest("malformed_frame", f"header says {header.count} blocks but {len(blocks)} were sent")
        check_blocks(session, header.start, blocks)
        held = set(session.received)
        new_bytes = sum(len(b) for i, b in enumerate(blocks, header.start) if i not in held)
        admission = self._meter.admit_storage(tenant, new_bytes)
        try:
            return await self._write_and_mark(session, header.start, blocks, 0, new_bytes)
        except BaseException:
            self._meter.refund(admission)
            raise

    async def add_chunk(
        self, tenant: TenantRecord, session: SessionRecord, header: AlignmentChunkHeader, ciphertexts: list[bytes]
    ) -> SessionRecord:
        """Check and store ciphertexts [start, start + count) of a receiving session of this tenant.
        The bytes of ciphertexts it did not hold yet are admitted to the tenant's storage first and
        given back if the chunk is refused."""
        if header.count != len(ciphertexts):
            raise BadRequest(
                "malformed_frame", f"header says {header.count} ciphertexts but {len(ciphertexts)} were sent"
            )
        end = header.start + header.count
        if end > session.num_ciphertexts:
            raise Unprocessable(
                "chunk_out_of_range",
                f"ciphertexts [{header.start}, {end}) exceed the session's {session.num_ciphertexts}",
            )
        if session.data_scale_bits is not None and session.data_scale_bits != header.data_scale_bits:
            raise Unprocessable(
                "scale_mismatch",
                f"earlier chunks used scale 2^{session.data_scale_bits}, this one 2^{header.data_scale_bits}",
            )
        max_bits = session.layout.max_data_scale_bits
        if header.data_scale_bits > max_bits:
            raise Unprocessable(
                "scale_too_large",
                f"data scale 2^{header.data_scale_bits} leaves Y too few bits "
                f"below the prime for {session.num_samples} samples; use at most 2^{max_bits}",
            )
        held = set(session.received)
        new_bytes = sum(len(ct) for i, ct in enumerate(ciphertexts, header.start) if i not in held)
        admission = self._meter.admit_storage(tenant, new_bytes)
        try:
            return await self._store_chunk(session, header, ciphertexts, new_bytes)
        except BaseException:
            self._meter.refund(admission)
            raise

    async def _store_chunk(
        self, session: SessionRecord, header: AlignmentChunkHeader, ciphertexts: list[bytes], new_bytes: int
    ) -> SessionRecord:
        job = ValidateChunkJob(
            parameter_set=session.parameter_set,
            ciphertexts=tuple(ciphertexts),
            max_ciphertext_bytes=self._settings.max_ciphertext_bytes,
            scale_bits=header.data_scale_bits,
        )
        try:
            await self._pool.run(job)
        except CiphertextError as exc:
            raise Unprocessable("invalid_ciphertext", str(exc)) from None
        return await self._write_and_mark(session, header.start, ciphertexts, header.data_scale_bits, new_bytes)

    async def _write_and_mark(
        self, session: SessionRecord, start: int, blobs: list[bytes], data_scale_bits: int, new_bytes: int
    ) -> SessionRecord:
        sid = session.session_id
        try:
            await run_in_threadpool(self._files.write, sid, start, blobs)
        except FileNotFoundError:  # the folder went away under the write: deleted meanwhile?
            if self._store.get_session(sid) is not None:
                raise
            self._files.remove(sid)
            raise Unknown("alignment_session", sid) from None
        updated = self._store.mark_received(sid, range(start, start + len(blobs)), data_scale_bits, new_bytes)
        if updated is None:  # deleted while the chunk was being checked or stored
            self._files.remove(sid)
            raise Unknown("alignment_session", sid)
        return updated

    def start_compute(self, session_id: str, tenant_id: str) -> SessionRecord:
        """Start the computation in the background once every ciphertext is there, on this replica
        and under its lease; a session that is done, or computing on a live replica, is returned as
        it is. (One whose replica died is reported as interrupted by `get`, and claimed anew here.)"""
        session = self._live(session_id, tenant_id)
        if session.state in (AlignmentState.computing, AlignmentState.done):
            return session
        missing = session.num_ciphertexts - len(session.received)
        if missing:
            raise Conflict(
                "chunks_missing", f"{missing} of {session.num_ciphertexts} ciphertexts have not been uploaded"
            )
        s = self._settings
        lease = ComputeLease(self._store, session_id, s.replica_id, s.compute_lease_seconds)
        if session.provider_held:
            # Claimed under a lease like any computation, so a replica that dies while solving is noticed;
            # the solve takes about a second, well inside one lease, so it is not renewed.
            if lease.claim():
                held = HeldMapComputation(self._store, self._blobs, self._settings, self._files)
                self._tasks.spawn(held.run(session_id))
                self._audit.record(tenant_id, "alignment.computed", subject=session.head_id)
            return self.get(session_id, tenant_id)
        self._keys.usable(session.key_id, KeyPurpose.alignment, tenant_id)
        if lease.claim():
            computation = AlignmentComputation(
                self._store, self._blobs, self._settings, self._pool, self._files, self._executor
            )
            self._tasks.spawn(computation.run(lease))
            self._audit.record(tenant_id, "alignment.computed", subject=session.head_id)
        return self.get(session_id, tenant_id)

    def result_path(self, session_id: str, tenant_id: str) -> Path:
        """Where the finished result frame is stored (reading it is audited)."""
        session = self._live(session_id, tenant_id)
        if session.provider_held:
            raise Conflict(
                "no_result_frame",
                "a provider-held alignment has no result to fetch: its map is folded into the session's "
                "derived_head_id once it is done",
            )
        if session.state != AlignmentState.done or not session.result_blob:
            raise Conflict(
                "result_not_ready",
                f"session is {session.state.value}" + (f": {session.error}" if session.error else ""),
            )
        self._audit.record(tenant_id, "alignment.result_read", subject=session.head_id)
        return self._blobs.path(session.result_blob)

    def delete(self, session_id: str, tenant_id: str) -> None:
        session = self.get(session_id, tenant_id)
        # The record goes first: a chunk upload that stores its files after this finds no session to
        # mark them on and removes them itself, so no ciphertext outlives its session.
        self._store.delete_session(session_id)
        if session.result_blob:
            self._blobs.delete(session.result_blob)
        self._files.remove(session_id)
        self._audit.record(tenant_id, "alignment.deleted", subject=session.head_id)

    def _check_sample_count(self, num_samples: int) -> None:
        limit = self._settings.max_alignment_samples
        if num_samples > limit:
            raise Unprocessable("too_many_samples", f"{num_samples} samples exceed the limit of {limit}")

    def _folds(self, body: AlignmentCreate, num_samples: int) -> int:
        """K if the client asked for per-fold results and they are offered and safe, else 0."""
        if not body.validation_folds:
            return 0
        folds = self._settings.offered_validation_folds
        if not folds:
            raise Unprocessable(
                "validation_folds_disabled",
                "this provider does not return per-fold results "
                "(HELIX_PROVIDER_ALIGNMENT_VALIDATION_FOLDS < 2); use a map method without "
                "validation folds",
            )
        error = fold_disclosure_error(num_samples, body.feature_dim, folds)
        if error is not None:
            raise Unprocessable("validation_folds_too_small", error)
        return folds

    def _live(self, session_id: str, tenant_id: str) -> SessionRecord:
        session = self.get(session_id, tenant_id)
        if session.expires_at <= utcnow():
            raise Gone(
                "session_expired", f"alignment session {session_id!r} expired at {session.expires_at.isoformat()}"
            )
        return session
