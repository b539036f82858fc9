"""Records and service results as wire messages: the one place that decides what a response shows."""

from __future__ import annotations

from shared_protocol.accounts import (
    ApiKeyInfo,
    AuditEntry,
    AuditPage,
    EffectiveQuotas,
    HeadQueryUsage,
    QuotaOverrides,
    QuotaUsage,
    TenantInfo,
    UsageReport,
)
from shared_protocol.corpus import corpus_sha256
from shared_protocol.messages import (
    AdminJob,
    AlignmentSession,
    ClassifyBatchReplyHeader,
    ClassifyReplyHeader,
    ClientRecord,
    CorpusInfo,
    HeadInfo,
    HeadTexts,
    HeadTrainingReport,
    KeyInfo,
)

from .clock import utcnow
from .services.catalog import TrainingOutcome
from .services.inference import BatchResult, ClassifyResult
from .services.metering import ALIGNMENTS, QUERIES, STORAGE, Metering, day_of, next_day
from .store import (
    ApiKeyRecord,
    AuditRecord,
    CorpusRecord,
    HeadRecord,
    JobRecord,
    KeyRecord,
    SessionRecord,
    Store,
    TenantRecord,
)

MAX_MISSING_SHOWN = 256  # enough for a client to resume an interrupted upload chunk by chunk


def head_info(h: HeadRecord, parameter_sets: list[str] | None = None) -> HeadInfo:
    """Public metadata of a head, never W or b; with the parameter sets it is evaluated under."""
    return HeadInfo(
        id=h.id,
        name=h.name,
        task=h.task,
        class_names=list(h.class_names),
        dim=h.dim,
        num_classes=h.num_classes,
        created_at=h.created_at,
        in_distribution_texts=len(h.texts),
        output_mode=h.output_mode,
        parameter_sets=parameter_sets or [],
        map_holder=h.map_holder,
        base_head_id=h.base_head_id,
    )


def head_texts(h: HeadRecord) -> HeadTexts:
    return HeadTexts(head_id=h.id, texts=list(h.texts), sha256=corpus_sha256(list(h.texts)))


def training_report(h: HeadRecord, seconds: float = 0.0) -> HeadTrainingReport:
    return HeadTrainingReport(
        head=head_info(h),
        train_examples=h.report.train_examples,
        train_accuracy=h.report.train_accuracy,
        seconds=seconds,
    )


def trained(outcome: TrainingOutcome) -> HeadTrainingReport:
    return training_report(outcome.head, outcome.seconds)


def job_view(job: JobRecord, head: HeadRecord | None = None) -> AdminJob:
    """An admin job; `head` is the head it stored (succeeded jobs), shown as its training report."""
    return AdminJob(
        job_id=job.job_id,
        kind=job.kind,
        state=job.state,
        head_id=job.head_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        timeout_seconds=job.timeout_seconds,
        pid=job.pid,
        report=training_report(head, job.seconds or 0.0) if head is not None else None,
        error=job.error,
        error_code=job.error_code,
    )


def corpus_info(c: CorpusRecord) -> CorpusInfo:
    return CorpusInfo(id=c.id, name=c.name, size=c.size, sha256=c.sha256, created_at=c.created_at)


def key_info(k: KeyRecord) -> KeyInfo:
    return KeyInfo(
        key_id=k.key_id,
        client_name=k.client_name,
        purpose=k.purpose,
        parameter_set=k.parameter_set,
        fingerprint=k.fingerprint,
        galois_elements=list(k.galois_elements),
        created_at=k.created_at,
        expires_at=k.expires_at,
    )


def client_records(clients: list[tuple[str, list[KeyRecord]]]) -> list[ClientRecord]:
    return [ClientRecord(client_name=name, keys=[key_info(k) for k in keys]) for name, keys in clients]


def session_view(s: SessionRecord) -> AlignmentSession:
    if s.provider_held:
        stride_bits, max_data_scale_bits = 0, 0
    else:
        layout = s.layout
        stride_bits, max_data_scale_bits = layout.stride_bits, layout.max_data_scale_bits
    return AlignmentSession(
        missing_ciphertexts=s.missing[:MAX_MISSING_SHOWN],
        session_id=s.session_id,
        head_id=s.head_id,
        corpus_id=s.corpus_id,
        key_id=s.key_id or None,
        parameter_set=s.parameter_set,
        state=s.state,
        num_samples=s.num_samples,
        feature_dim=s.feature_dim,
        samples_per_ciphertext=s.samples_per_ciphertext,
        stride_bits=stride_bits,
        max_data_scale_bits=max_data_scale_bits,
        num_ciphertexts=s.num_ciphertexts,
        received_ciphertexts=len(s.received),
        computed_columns=s.computed_columns,
        output_columns=s.output_columns,
        validation_folds=s.validation_folds,
        error=s.error,
        created_at=s.created_at,
        expires_at=s.expires_at,
        map_holder=s.map_holder,
        derived_head_id=s.derived_head_id,
        map_choice=dict(s.map_choice),
    )


def classify_reply(r: ClassifyResult) -> ClassifyReplyHeader:
    groups = r.layout.class_groups()
    return ClassifyReplyHeader(
        head_id=r.head.id,
        num_queries=r.num_queries,
        ciphertexts_per_query=len(groups),
        class_groups=[list(g) for g in groups],
        output_positions=[r.layout.output_positions(g).tolist() for g in range(len(groups))],
        num_classes=r.head.num_classes,
        noise_flooding_bits=r.noise_flooding_bits,
        output_mode=r.head.output_mode,
    )


def batch_reply(r: BatchResult) -> ClassifyBatchReplyHeader:
    return ClassifyBatchReplyHeader(
        head_id=r.head.id,
        num_queries=r.num_queries,
        num_classes=r.head.num_classes,
        noise_flooding_bits=r.noise_flooding_bits,
    )


def tenant_info(t: TenantRecord, meter: Metering) -> TenantInfo:
    q, limits = t.quotas, meter.limits(t)
    return TenantInfo(
        tenant_id=t.tenant_id,
        name=t.name,
        created_at=t.created_at,
        disabled=t.disabled,
        quotas=QuotaOverrides(
            queries_per_day=q.queries_per_day,
            alignments_per_day=q.alignments_per_day,
            storage_bytes=q.storage_bytes,
            rate_per_second=q.rate_per_second,
            rate_burst=q.rate_burst,
        ),
        effective_quotas=EffectiveQuotas(
            queries_per_day=limits.queries_per_day,
            alignments_per_day=limits.alignments_per_day,
            storage_bytes=limits.storage_bytes,
            rate_per_second=limits.rate_per_second,
            rate_burst=limits.rate_burst,
        ),
    )


def api_key_info(k: ApiKeyRecord) -> ApiKeyInfo:
    return ApiKeyInfo(key_id=k.key_id, tenant_id=k.tenant_id, created_at=k.created_at, revoked=k.revoked)


def _quota(used: int, limit: int) -> QuotaUsage:
    return QuotaUsage(used=used, limit=limit, remaining=max(0, limit - used))


def usage_report(t: TenantRecord, meter: Metering, store: Store) -> UsageReport:
    now = utcnow()
    day = day_of(now)
    limits = meter.limits(t)
    counters = {(c.counter, c.period): c.value for c in store.usage(t.tenant_id, [day, ""])}
    queries = [
        HeadQueryUsage(head_id=name[len(QUERIES) :], **_quota(v, limits.queries_per_day).model_dump())
        for (name, period), v in sorted(counters.items())
        if name.startswith(QUERIES) and period == day
    ]
    return UsageReport(
        tenant_id=t.tenant_id,
        day=day,
        resets_at=next_day(now),
        queries=queries,
        queries_per_day=limits.queries_per_day,
        alignments=_quota(counters.get((ALIGNMENTS, day), 0), limits.alignments_per_day),
        storage_bytes=_quota(counters.get((STORAGE, ""), 0), limits.storage_bytes),
        rate_per_second=limits.rate_per_second,
        rate_burst=limits.rate_burst,
    )


def audit_page(lines: list[AuditRecord], limit: int) -> AuditPage:
    entries = [
        AuditEntry(
            seq=a.seq,
            at=a.at,
            tenant_id=a.tenant_id,
            actor=a.actor,
            action=a.action,
            subject=a.subject,
            count=a.count,
            request_id=a.request_id,
        )
        for a in lines
    ]
    return AuditPage(entries=entries, next_after=entries[-1].seq if len(entries) == limit else None)
