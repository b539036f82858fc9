"""Records and service results as wire messages: the one place that decides what a response shows."""

from __future__ import annotations

from shared_protocol.corpus import corpus_sha256
from shared_protocol.messages import (
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

from .services.catalog import TrainingOutcome
from .services.inference import BatchResult, ClassifyResult
from .store import CorpusRecord, HeadRecord, KeyRecord, SessionRecord

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
    layout = s.layout
    return AlignmentSession(
        missing_ciphertexts=s.missing[:MAX_MISSING_SHOWN],
        session_id=s.session_id,
        head_id=s.head_id,
        corpus_id=s.corpus_id,
        key_id=s.key_id,
        parameter_set=s.parameter_set,
        state=s.state,
        num_samples=s.num_samples,
        feature_dim=s.feature_dim,
        samples_per_ciphertext=s.samples_per_ciphertext,
        stride_bits=layout.stride_bits,
        max_data_scale_bits=layout.max_data_scale_bits,
        num_ciphertexts=s.num_ciphertexts,
        received_ciphertexts=len(s.received),
        computed_columns=s.computed_columns,
        output_columns=s.output_columns,
        validation_folds=s.validation_folds,
        error=s.error,
        created_at=s.created_at,
        expires_at=s.expires_at,
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
