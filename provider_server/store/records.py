"""Typed, immutable records of what the provider stores.

Why frozen dataclasses and not rows: callers read fields with types a checker can follow, nothing
can change a record behind the store's back, and no storage detail (JSON columns, ISO strings,
integer booleans) leaks past the store. Timestamps are timezone-aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from helix_he.packing import CrossCovarianceLayout
from helix_he.params import get_parameter_set
from shared_protocol.messages import AlignmentState, JobState, KeyPurpose, MapHolder, OutputMode


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
    map_holder: MapHolder = MapHolder.client  # who may hold its alignment map, set at creation
    # A head derived by a provider-held alignment: the head its map was folded into, and the tenant
    # that ran it (the only one that sees or uses it). Both None for the admin's heads.
    base_head_id: str | None = None
    tenant_id: str | None = None

    def visible_to(self, tenant_id: str) -> bool:
        """The admin's heads are public; a derived head is its tenant's alone."""
        return self.base_head_id is None or self.tenant_id == tenant_id

    @property
    def counted_as(self) -> str:
        """The head a query of this one counts against (a derived head's queries are its base head's)."""
        return self.base_head_id or self.id


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
    tenant_id: str | None = None  # its owner; None only for keys from before tenants (unreachable)
    stored_bytes: int = 0  # charged to the owner's storage while the key is not revoked


@dataclass(frozen=True)
class ChallengeRecord:
    """A seed issued for one key registration: the uniform halves of that key are its expansion.
    Single use (`used` once a registration named it, whatever the outcome) and short-lived."""

    challenge_id: str
    seed: bytes
    created_at: datetime
    expires_at: datetime
    used: bool = False
    tenant_id: str | None = None  # only its owner's registration may take it


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
    tenant_id: str | None = None  # its owner; None only for sessions from before tenants (unreachable)
    stored_bytes: int = 0  # its chunks and result, charged to the owner's storage until it is deleted
    # Provider-held alignments: the chunks are plaintext row blocks of X (no key: key_id is ""), the
    # provider solves `map_method` with `map_params`, and the result is the derived head.
    map_holder: MapHolder = MapHolder.client
    map_method: str = ""
    map_params: tuple[tuple[str, float], ...] = ()
    derived_head_id: str | None = None
    map_choice: tuple[tuple[str, float], ...] = ()  # what the method chose, once done

    @property
    def provider_held(self) -> bool:
        return self.map_holder == MapHolder.provider

    compute_owner: str | None = None  # the replica running (or last running) its computation
    lease_expires_at: datetime | None = None  # until when that replica is known to be alive for it

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


@dataclass(frozen=True)
class Quotas:
    """A tenant's own limits; None falls back to the provider's default (settings)."""

    queries_per_day: int | None = None  # per head; a batch of m queries counts m
    alignments_per_day: int | None = None
    storage_bytes: int | None = None  # registered keys, uploaded chunks and results held
    rate_per_second: float | None = None  # token bucket refill on classify and on creations
    rate_burst: int | None = None  # token bucket size


@dataclass(frozen=True)
class TenantRecord:
    """An account the admin created: it owns keys, challenges, sessions and results."""

    tenant_id: str
    name: str
    created_at: datetime
    disabled: bool = False
    quotas: Quotas = Quotas()


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key of a tenant: only the SHA-256 of its secret is stored (see `provider_server.tenants`)."""

    key_id: str
    tenant_id: str
    secret_sha256: str
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class Charge:
    """An amount added to one of a tenant's counters in one period (a UTC day "YYYY-MM-DD", or ""
    for counters that never reset, like storage), refused if it would take the counter past `limit`."""

    counter: str
    period: str
    amount: int
    limit: int | None


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `burst` tokens at most, refilled at `rate_per_second`; a request takes one."""

    name: str
    rate_per_second: float
    burst: int


@dataclass(frozen=True)
class Refusal:
    """Why an admission was refused: the counter or bucket named, and for a bucket how many seconds
    until it holds a token again (a counter's wait depends on its period, which the caller knows)."""

    name: str
    wait_seconds: float | None = None


@dataclass(frozen=True)
class Counter:
    """One counter of a tenant's usage in one period."""

    counter: str
    period: str
    value: int


@dataclass(frozen=True)
class AuditRecord:
    """One line of the append-only audit log: who (tenant), what (action and subject, say the head),
    when, how many, and the request it came with. `seq` is given by the store, ascending."""

    tenant_id: str | None
    action: str
    at: datetime
    count: int = 1
    subject: str | None = None
    request_id: str | None = None
    actor: str = "tenant"  # or "admin"
    seq: int = 0


#: Job states that still hold a place among the running jobs (and can be cancelled).
ACTIVE_JOB_STATES = (JobState.queued, JobState.running)


@dataclass(frozen=True)
class JobRecord:
    """Long admin work run as a job (today: a head training). A record, not only a task in memory, so
    its state survives a provider restart and another replica sharing the database can read it."""

    job_id: str
    kind: str
    state: JobState
    head_id: str  # the head the job trains
    created_at: datetime
    timeout_seconds: float
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pid: int | None = None  # the training process, on the host that runs the job, while it runs
    seconds: float | None = None  # how long the training took, once succeeded
    error_code: str | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES
