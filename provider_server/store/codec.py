"""Records to rows and back: the one place that knows how each field is stored.

Lists, and a map method's named parameters, are JSON text, a challenge's seed is hex, enums are their
values; timestamps and booleans are left to the column types (`schema.py`), which encode them per
database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared_protocol.messages import AlignmentState, JobState, KeyPurpose, MapHolder, OutputMode

from .records import (
    ApiKeyRecord,
    AuditRecord,
    ChallengeRecord,
    CorpusRecord,
    HeadRecord,
    JobRecord,
    KeyRecord,
    Quotas,
    SessionRecord,
    TenantRecord,
    TrainingReport,
)

Row = Mapping[Any, Any]


def head(r: Row) -> HeadRecord:
    report = json.loads(r["report"])
    return HeadRecord(
        id=r["id"],
        name=r["name"],
        task=r["task"],
        class_names=tuple(json.loads(r["class_names"])),
        dim=r["dim"],
        num_classes=r["num_classes"],
        created_at=r["created_at"],
        weights_blob=r["weights_blob"],
        bias_blob=r["bias_blob"],
        texts=tuple(json.loads(r["texts"])),
        texts_embeddings_blob=r["texts_embeddings_blob"],
        encoder_model_id=r["encoder_model_id"],
        report=TrainingReport(train_examples=report["train_examples"], train_accuracy=report["train_accuracy"]),
        output_mode=OutputMode(r["output_mode"]),
        map_holder=MapHolder(r["map_holder"]),
        base_head_id=r["base_head_id"],
        tenant_id=r["tenant_id"],
    )


def head_row(h: HeadRecord) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "task": h.task,
        "class_names": json.dumps(list(h.class_names)),
        "dim": h.dim,
        "num_classes": h.num_classes,
        "created_at": h.created_at,
        "weights_blob": h.weights_blob,
        "bias_blob": h.bias_blob,
        "texts": json.dumps(list(h.texts)),
        "texts_embeddings_blob": h.texts_embeddings_blob,
        "encoder_model_id": h.encoder_model_id,
        "report": json.dumps({"train_examples": h.report.train_examples, "train_accuracy": h.report.train_accuracy}),
        "output_mode": h.output_mode.value,
        "map_holder": h.map_holder.value,
        "base_head_id": h.base_head_id,
        "tenant_id": h.tenant_id,
    }


def corpus(r: Row) -> CorpusRecord:
    return CorpusRecord(
        id=r["id"],
        name=r["name"],
        size=r["size"],
        sha256=r["sha256"],
        created_at=r["created_at"],
        texts_blob=r["texts_blob"],
        embeddings_blob=r["embeddings_blob"],
        encoder_model_id=r["encoder_model_id"],
    )


def corpus_row(c: CorpusRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "size": c.size,
        "sha256": c.sha256,
        "created_at": c.created_at,
        "texts_blob": c.texts_blob,
        "embeddings_blob": c.embeddings_blob,
        "encoder_model_id": c.encoder_model_id,
    }


def key(r: Row) -> KeyRecord:
    return KeyRecord(
        key_id=r["key_id"],
        client_name=r["client_name"],
        purpose=KeyPurpose(r["purpose"]),
        parameter_set=r["parameter_set"],
        fingerprint=r["fingerprint"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        public_key_blob=r["public_key_blob"],
        revoked=bool(r["revoked"]),
        galois_keys_blob=r["galois_keys_blob"],
        galois_elements=tuple(json.loads(r["galois_elements"])),
        tenant_id=r["tenant_id"],
        stored_bytes=r["stored_bytes"],
    )


def key_row(k: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "client_name": k.client_name,
        "purpose": k.purpose.value,
        "parameter_set": k.parameter_set,
        "fingerprint": k.fingerprint,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "public_key_blob": k.public_key_blob,
        "revoked": k.revoked,
        "galois_keys_blob": k.galois_keys_blob,
        "galois_elements": json.dumps(list(k.galois_elements)),
        "tenant_id": k.tenant_id,
        "stored_bytes": k.stored_bytes,
    }


def challenge(r: Row) -> ChallengeRecord:
    return ChallengeRecord(
        challenge_id=r["challenge_id"],
        seed=bytes.fromhex(r["seed"]),
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        used=bool(r["used"]),
        tenant_id=r["tenant_id"],
    )


def challenge_row(c: ChallengeRecord) -> dict[str, Any]:
    return {
        "challenge_id": c.challenge_id,
        "seed": c.seed.hex(),
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "used": c.used,
        "tenant_id": c.tenant_id,
    }


def session(r: Row) -> SessionRecord:
    return SessionRecord(
        session_id=r["session_id"],
        head_id=r["head_id"],
        corpus_id=r["corpus_id"],
        key_id=r["key_id"],
        parameter_set=r["parameter_set"],
        state=AlignmentState(r["state"]),
        num_samples=r["num_samples"],
        feature_dim=r["feature_dim"],
        samples_per_ciphertext=r["samples_per_ciphertext"],
        num_ciphertexts=r["num_ciphertexts"],
        received=tuple(json.loads(r["received"])),
        computed_columns=r["computed_columns"],
        output_columns=r["output_columns"],
        error=r["error"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        include_head_texts=bool(r["include_head_texts"]),
        client_model_id=r["client_model_id"],
        data_scale_bits=r["data_scale_bits"],
        result_blob=r["result_blob"],
        validation_folds=r["validation_folds"],
        tenant_id=r["tenant_id"],
        stored_bytes=r["stored_bytes"],
        map_holder=MapHolder(r["map_holder"]),
        map_method=r["map_method"],
        map_params=pairs(r["map_params"]),
        derived_head_id=r["derived_head_id"],
        map_choice=pairs(r["map_choice"]),
        compute_owner=r["compute_owner"],
        lease_expires_at=r["lease_expires_at"],
    )


def pairs(text: str) -> tuple[tuple[str, float], ...]:
    """A JSON object of named numbers (a map method's parameters or choice) as sorted pairs."""
    return tuple(sorted((str(k), float(v)) for k, v in json.loads(text).items()))


def pairs_text(values: Sequence[tuple[str, float]]) -> str:
    return json.dumps(dict(values))


def session_row(s: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "head_id": s.head_id,
        "corpus_id": s.corpus_id,
        "key_id": s.key_id,
        "parameter_set": s.parameter_set,
        "state": s.state.value,
        "num_samples": s.num_samples,
        "feature_dim": s.feature_dim,
        "samples_per_ciphertext": s.samples_per_ciphertext,
        "num_ciphertexts": s.num_ciphertexts,
        "received": json.dumps(sorted(s.received)),
        "computed_columns": s.computed_columns,
        "output_columns": s.output_columns,
        "error": s.error,
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "include_head_texts": s.include_head_texts,
        "client_model_id": s.client_model_id,
        "data_scale_bits": s.data_scale_bits,
        "result_blob": s.result_blob,
        "validation_folds": s.validation_folds,
        "tenant_id": s.tenant_id,
        "stored_bytes": s.stored_bytes,
        "map_holder": s.map_holder.value,
        "map_method": s.map_method,
        "map_params": pairs_text(s.map_params),
        "derived_head_id": s.derived_head_id,
        "map_choice": pairs_text(s.map_choice),
        "compute_owner": s.compute_owner,
        "lease_expires_at": s.lease_expires_at,
    }


def tenant(r: Row) -> TenantRecord:
    return TenantRecord(
        tenant_id=r["tenant_id"],
        name=r["name"],
        created_at=r["created_at"],
        disabled=bool(r["disabled"]),
        quotas=Quotas(
            queries_per_day=r["queries_per_day"],
            alignments_per_day=r["alignments_per_day"],
            storage_bytes=r["storage_bytes"],
            rate_per_second=r["rate_per_second"],
            rate_burst=r["rate_burst"],
        ),
    )


def quota_row(q: Quotas) -> dict[str, Any]:
    return {
        "queries_per_day": q.queries_per_day,
        "alignments_per_day": q.alignments_per_day,
        "storage_bytes": q.storage_bytes,
        "rate_per_second": q.rate_per_second,
        "rate_burst": q.rate_burst,
    }


def tenant_row(t: TenantRecord) -> dict[str, Any]:
    return {
        "tenant_id": t.tenant_id,
        "name": t.name,
        "created_at": t.created_at,
        "disabled": t.disabled,
        **quota_row(t.quotas),
    }


def api_key(r: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=r["key_id"],
        tenant_id=r["tenant_id"],
        secret_sha256=r["secret_sha256"],
        created_at=r["created_at"],
        revoked=bool(r["revoked"]),
    )


def api_key_row(k: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "tenant_id": k.tenant_id,
        "secret_sha256": k.secret_sha256,
        "created_at": k.created_at,
        "revoked": k.revoked,
    }


def audit(r: Row) -> AuditRecord:
    return AuditRecord(
        seq=r["seq"],
        at=r["at"],
        tenant_id=r["tenant_id"],
        actor=r["actor"],
        action=r["action"],
        subject=r["subject"],
        count=r["count"],
        request_id=r["request_id"],
    )


def audit_row(a: AuditRecord) -> dict[str, Any]:
    """An audit line's columns but `seq`, which the database gives."""
    return {
        "at": a.at,
        "tenant_id": a.tenant_id,
        "actor": a.actor,
        "action": a.action,
        "subject": a.subject,
        "count": a.count,
        "request_id": a.request_id,
    }


def job(r: Row) -> JobRecord:
    return JobRecord(
        job_id=r["job_id"],
        kind=r["kind"],
        state=JobState(r["state"]),
        head_id=r["head_id"],
        created_at=r["created_at"],
        timeout_seconds=r["timeout_seconds"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        pid=r["pid"],
        seconds=r["seconds"],
        error_code=r["error_code"],
        error=r["error"],
    )


def job_row(j: JobRecord) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "kind": j.kind,
        "state": j.state.value,
        "head_id": j.head_id,
        "created_at": j.created_at,
        "timeout_seconds": j.timeout_seconds,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "pid": j.pid,
        "seconds": j.seconds,
        "error_code": j.error_code,
        "error": j.error,
    }
