"""Typed, immutable records of what the provider stores.

Why frozen dataclasses and not rows: callers read fields with types a checker can follow, nothing
can change a record behind the store's back, and no storage detail (JSON columns, ISO strings,
integer booleans) leaks past the store. Timestamps are timezone-aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from helix_he.packing import CrossCovarianceLayout
from helix_he.params import get_parameter_set
from shared_protocol.messages import AlignmentState, KeyPurpose, OutputMode


@dataclass(frozen=True)
class TrainingReport:
    """How a head was trained, as reported by the admin API."""

    train_examples: int
    train_accuracy: float


@dataclass(frozen=True)
class HeadRecord:
    """A linear classification head logits = x @ W + b; W and b live in the blob store."""

    id: str
    name: str
    task: str
    class_names: tuple[str, ...]
    dim: int
    num_classes: int
    created_at: datetime
    weights_blob: str
    bias_blob: str
    texts: tuple[str, ...]  # in-distribution texts published with the head
    texts_embeddings_blob: str | None  # the provider's embeddings of `texts`, None when there are none
    encoder_model_id: str
    report: TrainingReport
    output_mode: OutputMode = OutputMode.logits  # what its classify replies reveal, set at creation


@dataclass(frozen=True)
class CorpusRecord:
    """A public corpus both parties embed; texts (JSON) and the provider's embeddings are blobs."""

    id: str
    name: str
    size: int
    sha256: str
    created_at: datetime
    texts_blob: str
    embeddings_blob: str
    encoder_model_id: str


@dataclass(frozen=True)
class KeyRecord:
    """A client's registered public key material (never a secret key)."""

    key_id: str
    client_name: str
    purpose: KeyPurpose
    parameter_set: str
    fingerprint: str
    created_at: datetime
    expires_at: datetime
    public_key_blob: str
    revoked: bool = False
    galois_keys_blob: str | None = None
    galois_elements: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChallengeRecord:
    """A seed issued for one key registration: the uniform halves of that key are its expansion.
    Single use (`used` once a registration named it, whatever the outcome) and short-lived."""

    challenge_id: str
    seed: bytes
    created_at: datetime
    expires_at: datetime
    used: bool = False


@dataclass(frozen=True)
class SessionRecord:
    """An alignment session: the client's ciphertexts arrive in chunks, then the provider computes."""

    session_id: str
    head_id: str
    corpus_id: str
    key_id: str
    parameter_set: str
    state: AlignmentState
    num_samples: int
    feature_dim: int
    samples_per_ciphertext: int
    num_ciphertexts: int
    received: tuple[int, ...]  # sorted indices of the uploaded ciphertexts
    computed_columns: int
    output_columns: int
    error: str | None
    created_at: datetime
    expires_at: datetime
    include_head_texts: bool
    client_model_id: str
    data_scale_bits: int | None  # fixed by the first chunk
    result_blob: str | None
    validation_folds: int = 0  # K per-fold results requested, 0 for one result over all samples

    @property
    def layout(self) -> CrossCovarianceLayout:
        """The packing both parties agreed on at creation; the one place it is rebuilt from a session."""
        n = get_parameter_set(self.parameter_set).poly_modulus_degree
        return CrossCovarianceLayout(
            n=n,
            feature_dim=self.feature_dim,
            num_samples=self.num_samples,
            stride_bits=self.samples_per_ciphertext.bit_length() - 1,
        )

    @property
    def missing(self) -> list[int]:
        """Indices of the ciphertexts not uploaded yet, in order."""
        got = set(self.received)
        return [i for i in range(self.num_ciphertexts) if i not in got]
