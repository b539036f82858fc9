"""Private inference: a head evaluated on the client's encrypted queries; replies decrypt to what the
head's output mode reveals (its logits, or its ranking: secretly scaled pairwise differences) only.

Cheap checks (head, key, counts, the pinned query scale, ciphertext sizes) run here; the workers
parse and validate every residue (again at the pinned scale and level) and answer a bad ciphertext
with CiphertextError, which becomes 422 invalid_ciphertext. A request that passes them is admitted
against its tenant's daily queries of the head and its classify rate (`Metering`), evaluated, and
audited; if the evaluation fails its queries are given back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from helix_he.context import CiphertextError, he_context
from helix_he.linear_head import check_query_scale_bits, ranking_pairs
from helix_he.packing import LinearHeadLayout
from helix_he.params import get_parameter_set
from helix_he.rlwe import SeededCiphertext
from shared_protocol.messages import ClassifyBatchHeader, ClassifyHeader, KeyPurpose, MapHolder, OutputMode

from ..blobs import BlobStore
from ..errors import BadRequest, Unknown, Unprocessable
from ..settings import ProviderSettings
from ..store import HeadRecord, KeyRecord, Store, TenantRecord
from ..workers.jobs import ClassifyBatchJob, ClassifyJob, Job
from ..workers.pool import HePool
from .audit import AuditLog
from .head_sets import head_parameter_sets
from .keys import KeyService
from .metering import Admission, Metering

R = TypeVar("R")

MAX_BATCH_FEATURES = 4096  # feature ciphertexts in one batch frame (embedding dimensions)


@dataclass(frozen=True)
class ClassifyResult:
    """Replies per query, `layout.ciphertexts_per_query` each, in query order. The layout's outputs
    are the classes in logits mode and the class pairs in ranking mode."""

    head: HeadRecord
    layout: LinearHeadLayout
    num_queries: int
    replies: list[bytes]
    noise_flooding_bits: int


@dataclass(frozen=True)
class BatchResult:
    """One reply per class."""

    head: HeadRecord
    num_queries: int
    replies: list[bytes]
    noise_flooding_bits: int


class InferenceService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        settings: ProviderSettings,
        keys: KeyService,
        pool: HePool,
        meter: Metering,
        audit: AuditLog,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._keys = keys
        self._pool = pool
        self._meter = meter
        self._audit = audit

    async def classify(self, tenant: TenantRecord, header: ClassifyHeader, queries: list[bytes]) -> ClassifyResult:
        head, key = self._head_and_key(header.head_id, header.key_id, tenant.tenant_id)
        if header.num_queries != len(queries):
            raise BadRequest(
                "malformed_frame", f"header says {header.num_queries} queries but {len(queries)} ciphertexts were sent"
            )
        he = he_context(key.parameter_set)
        _check_scale(header.query_scale_bits, key.parameter_set)
        _check_sizes(queries, key.parameter_set, "query")
        s = self._settings
        # Spread one request over the workers; each worker caches the prepared head.
        parts = max(1, min(s.workers, len(queries)))
        size = -(-len(queries) // parts)
        weights, bias = self._head_paths(head)
        jobs = [
            ClassifyJob(
                parameter_set=key.parameter_set,
                weights_path=weights,
                bias_path=bias,
                noise_bits=s.noise_flooding_bits,
                public_key_path=self._path(key.public_key_blob),
                queries=tuple(queries[i : i + size]),
                max_ciphertext_bytes=s.max_ciphertext_bytes,
                query_scale_bits=header.query_scale_bits,
                output_mode=head.output_mode.value,
            )
            for i in range(0, len(queries), size)
        ]
        admission = self._meter.admit_classify(tenant, head.counted_as, len(queries))
        results = await self._charged(admission, asyncio.gather(*(self._run(job) for job in jobs)))
        self._audit.record(tenant.tenant_id, "classify", subject=head.counted_as, count=len(queries))
        replies = [blob for part in results for per_query in part for blob in per_query]
        outputs = head.num_classes if head.output_mode == OutputMode.logits else len(ranking_pairs(head.num_classes))
        return ClassifyResult(
            head=head,
            layout=LinearHeadLayout(n=he.n, d=head.dim, k=outputs),
            num_queries=len(queries),
            replies=replies,
            noise_flooding_bits=s.noise_flooding_bits,
        )

    async def classify_batch(
        self, tenant: TenantRecord, header: ClassifyBatchHeader, features: list[bytes]
    ) -> BatchResult:
        """Many queries in feature-major packing: `dim` ciphertexts in, one ciphertext per class out.
        One worker evaluates a batch (the work is a few integer combinations of `dim` polynomials).
        Logits heads only: the batch's replies are shared by all its queries, so a ranking head's
        per-query factors cannot be drawn, and one factor per batch would reveal the ratios between
        its queries' differences."""
        head, key = self._head_and_key(header.head_id, header.key_id, tenant.tenant_id)
        if head.output_mode != OutputMode.logits:
            raise Unprocessable(
                "output_mode_unsupported",
                f"head {head.id!r} answers in {head.output_mode.value} mode, which feature-major batches "
                "cannot provide; send one ciphertext per query to POST /v1/classify",
            )
        he = he_context(key.parameter_set)
        if header.dim != head.dim or len(features) != head.dim:
            raise BadRequest(
                "malformed_frame",
                f"head {header.head_id} takes {head.dim} feature ciphertexts; header "
                f"says {header.dim} and the frame has {len(features)}",
            )
        if header.num_queries > he.n:
            raise BadRequest(
                "malformed_frame",
                f"a batch holds at most {he.n} queries under {key.parameter_set}, header says {header.num_queries}",
            )
        _check_scale(header.query_scale_bits, key.parameter_set)
        _check_sizes(features, key.parameter_set, "feature")
        s = self._settings
        weights, bias = self._head_paths(head)
        job = ClassifyBatchJob(
            parameter_set=key.parameter_set,
            weights_path=weights,
            bias_path=bias,
            noise_bits=s.noise_flooding_bits,
            public_key_path=self._path(key.public_key_blob),
            features=tuple(features),
            num_queries=header.num_queries,
            max_ciphertext_bytes=s.max_ciphertext_bytes,
            query_scale_bits=header.query_scale_bits,
        )
        admission = self._meter.admit_classify(tenant, head.counted_as, header.num_queries)
        replies = await self._charged(admission, self._run(job))
        self._audit.record(tenant.tenant_id, "classify.batch", subject=head.counted_as, count=header.num_queries)
        return BatchResult(
            head=head, num_queries=header.num_queries, replies=replies, noise_flooding_bits=s.noise_flooding_bits
        )

    def _head_and_key(self, head_id: str, key_id: str, tenant_id: str) -> tuple[HeadRecord, KeyRecord]:
        """The head (the admin's, or one derived for this tenant: another's answers as unknown) and the key.
        A head whose map only the provider may hold answers through the heads derived from it alone:
        queries in its own space would reach W without the map in between."""
        head = self._store.get_head(head_id)
        if head is None or not head.visible_to(tenant_id):
            raise Unknown("head", head_id)
        if head.base_head_id is None and head.map_holder == MapHolder.provider:
            raise Unprocessable(
                "map_holder_not_offered",
                f"head {head_id!r} answers only through a provider-held map: run a provider-held alignment "
                "and classify with the head it derives",
            )
        key = self._keys.usable(key_id, KeyPurpose.inference, tenant_id)
        sets = head_parameter_sets(head, self._blobs, self._settings)
        if key.parameter_set not in sets:
            raise Unprocessable(
                "parameter_set_unsuitable",
                f"head {head_id} is not evaluated under {key.parameter_set} (its outputs may exceed that set's "
                f"headroom, or its dimension the ring); register an inference key for one of {sets}",
            )
        return head, key

    async def _charged(self, admission: Admission, work: Awaitable[R]) -> R:
        """The admitted work's result; its queries are given back if it fails."""
        try:
            return await work
        except BaseException:
            self._meter.refund(admission)
            raise

    def _path(self, blob_id: str) -> str:
        return str(self._blobs.path(blob_id))

    def _head_paths(self, head: HeadRecord) -> tuple[str, str]:
        return self._path(head.weights_blob), self._path(head.bias_blob)

    async def _run(self, job: Job[R]) -> R:
        try:
            return await self._pool.run(job)
        except CiphertextError as exc:
            raise Unprocessable("invalid_ciphertext", str(exc)) from None


def _check_scale(declared_bits: int, parameter_set: str) -> None:
    """The set's pinned query scale, before any worker is busied (the worker checks the actual scale)."""
    try:
        check_query_scale_bits(declared_bits, get_parameter_set(parameter_set), what="declared query")
    except CiphertextError as exc:
        raise Unprocessable("invalid_ciphertext", str(exc)) from None


def _check_sizes(blobs: list[bytes], parameter_set: str, what: str) -> None:
    """A cheap check before any worker is busied; the worker parses and validates every residue."""
    he = he_context(parameter_set)
    expected = SeededCiphertext.wire_size(he.output_level.primes, he.n)
    for i, blob in enumerate(blobs):
        if len(blob) != expected:
            raise Unprocessable(
                "invalid_ciphertext",
                f"{what} {i}: ciphertext has {len(blob)} bytes, a query for {parameter_set} has {expected}",
            )
