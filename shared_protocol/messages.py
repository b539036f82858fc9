"""Pydantic models for every request and response on the wire: the single source of truth.

JSON endpoints use these directly; binary endpoints carry one of the `*Header` models inside a frame
(`shared_protocol.framing`). Field docs say who learns what.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Names and ids of heads, corpora, keys, sessions: they become path segments and file names, so they must
#: start with a letter or digit (no ".", "..", "-x" or hidden names) and stay short.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
#: A seed for the provider's seeded choices (sampling, training): numpy and sklearn take 32 bits.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
#: Inverse regularisation strength of a head's logistic regression: finite and within [1e-6, 1e6].
RegularizationC = Annotated[float, Field(ge=1e-6, le=1e6, allow_inf_nan=False)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SeedHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(_Strict):
    """Body of every 4xx/5xx answer: a stable machine code and a human sentence naming the problem."""

    error: str
    detail: str


# --- service info ------------------------------------------------------------------------------
class ParameterSetInfo(_Strict):
    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: list[int]
    scale_bits: int
    security_bits: int
    query_scale_bits: int = Field(26, description="the pinned scale of inference queries under this set")
    reply_modulus_bits: int | None = Field(None, description="replies are switched down to 2^bits, if set")
    supports_alignment: bool = True


class Limits(_Strict):
    max_request_bytes: int
    max_ciphertext_bytes: int
    max_queries_per_request: int
    max_alignment_samples: int
    alignment_validation_folds: int = Field(
        0,
        description="K of the fixed validation folds per-fold alignment "
        "results use (shared_protocol.folds); 0: not offered",
    )


class ServiceInfo(_Strict):
    service: str = "helix-provider"
    protocol_version: str
    encoder_model_id: str = Field(description="the provider's embedding model identifier (not its weights)")
    embedding_dim: int
    parameter_sets: list[ParameterSetInfo]
    default_parameter_set: str
    limits: Limits
    inference_key_ttl_seconds: int
    alignment_key_ttl_seconds: int


# --- heads and corpora -------------------------------------------------------------------------
class OutputMode(str, Enum):
    """What a head's classify replies decrypt to: the provider's policy, set per head by its admin.

    `logits`: the k logits per query. `ranking`: for each class pair (i, j), i < j (in
    `itertools.combinations` order), (z_i - z_j) times a fresh secret factor in [1, 2^8) per pair and
    query; the signs give the order of the logits and the label, not their magnitudes. Ranking heads
    answer single-query ciphertexts only (POST /v1/classify), never feature-major batches."""

    logits = "logits"
    ranking = "ranking"


class MapHolder(str, Enum):
    """Who holds a head's alignment map: the admin's policy, set per head at creation.

    `client` (the paper's Algorithm 1, the default): the client decrypts Enc(X^T Y_A) and 1^T Y_A,
    solves the map M itself and classifies with Enc(x_B M + b) against the head (d_A inputs).
    `provider` (Algorithm 2): the client uploads its embeddings X_B of the public texts, the provider
    solves M, folds it into a head owned by that tenant alone (W' = M W, b' = b_M W + b) and the
    client classifies with Enc(x_B) (d_B inputs); the client never holds M nor learns X^T Y_A.
    `either`: the client chooses per alignment. docs/security.md says who learns what."""

    client = "client"
    provider = "provider"
    either = "either"

    def offers(self, holder: MapHolder) -> bool:
        """Whether an alignment with the map held by `holder` (client or provider) is offered."""
        return self == MapHolder.either or self == holder


class HeadInfo(_Strict):
    """Public description of a classification head. Never carries W or b."""

    id: Identifier
    name: str
    task: str
    class_names: list[str]
    dim: int
    num_classes: int
    created_at: datetime
    in_distribution_texts: int = Field(0, description="how many in-distribution texts the provider publishes")
    output_mode: OutputMode = Field(OutputMode.logits, description="what classify replies of this head decrypt to")
    parameter_sets: list[str] = Field(
        default_factory=list,
        description="the parameter sets the provider evaluates this head under, smallest round trip first; "
        "a classify request under another set is refused",
    )
    map_holder: MapHolder = Field(MapHolder.client, description="who may hold this head's alignment map")
    base_head_id: Identifier | None = Field(
        None,
        description="set on a head derived by a provider-held alignment: the head its map was folded "
        "into; only the tenant that ran the alignment sees or uses it, with its own embeddings as inputs",
    )


class HeadTexts(_Strict):
    head_id: Identifier
    texts: list[str]
    sha256: Sha256Hex


class CorpusInfo(_Strict):
    id: Identifier
    name: str
    size: int
    sha256: Sha256Hex = Field(description="sha256 of the canonical text list (shared_protocol.corpus)")
    created_at: datetime


class CorpusTexts(_Strict):
    id: Identifier
    sha256: Sha256Hex
    offset: int
    total: int
    texts: list[str]


# --- keys --------------------------------------------------------------------------------------
class KeyPurpose(str, Enum):
    alignment = "alignment"
    inference = "inference"


class KeyChallenge(_Strict):
    """Answer of POST /v1/keys/challenges: the seed the uniform half of the next key must come from.

    The provider re-randomises every reply with the client's public key; that hides the reply only
    if the key's uniform half is uniform, which the provider cannot see in a key the client chose.
    So the client expands it from this seed (`helix_he.seeded_keys`), the provider checks the
    expansion at registration, and the challenge is single use and short-lived. The seed is not a
    secret: it fixes public key material only."""

    challenge_id: Identifier
    seed: SeedHex = Field(description="32 random bytes, lowercase hex")
    expires_at: datetime


class KeyRegistrationHeader(_Strict):
    """Frame header for POST /v1/keys. Blob 0 is the client's CKKS public key; an alignment key adds
    blob 1, Galois keys for exactly `galois_elements`.

    The public key binds the key id to a parameter set, and the provider uses it to re-randomise
    every reply (adding a fresh encryption of zero). Alignment packs its result with the trace
    automorphisms X -> X^(1 + N/2^i), i < k (`helix_he.packing.trace_galois_elements`), so
    the client sends those k Galois keys (~1.4 MB each at N=8192) and no others; inference
    needs no evaluation keys. The uniform half of every key ciphertext is the expansion of the seed
    of `challenge_id` (protocol 1.1: required; a registration without it is refused). The secret key
    never leaves the client."""

    client_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    purpose: KeyPurpose
    parameter_set: str
    ttl_seconds: int | None = Field(None, ge=60, le=30 * 24 * 3600)
    galois_elements: list[int] = Field(
        default_factory=list, max_length=16, description="alignment only: 1 + N/2^i for i < k, in this order"
    )
    challenge_id: Identifier | None = Field(
        None, description="the KeyChallenge the key's uniform halves are expanded from (required since 1.1)"
    )


class KeyInfo(_Strict):
    key_id: Identifier
    client_name: str
    purpose: KeyPurpose
    parameter_set: str
    fingerprint: Sha256Hex
    galois_elements: list[int] = Field(
        default_factory=list, description="automorphisms the registered Galois keys allow"
    )
    created_at: datetime
    expires_at: datetime


# --- secure alignment --------------------------------------------------------------------------
class AlignmentState(str, Enum):
    receiving = "receiving"
    computing = "computing"
    done = "done"
    failed = "failed"


#: Names of map parameters a client may set for a provider-held alignment (`helix_alignment.methods`).
MapParamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]


class AlignmentCreate(_Strict):
    head_id: Identifier
    corpus_id: Identifier
    corpus_sha256: Sha256Hex = Field(description="the client proves it embedded exactly these texts")
    key_id: Identifier | None = Field(
        None, description="the alignment key the chunks are encrypted under; required unless map_holder is provider"
    )
    feature_dim: int = Field(ge=1, description="the client's embedding dimension D")
    include_head_texts: bool = False
    client_model_id: str = Field("", max_length=256)
    validation_folds: bool = Field(
        False,
        description="return X_k^T Y_k for each of the provider's fixed "
        "validation folds (shared_protocol.folds), so the client can choose its map's "
        "regularisation on held-out alignment data (their sum is X^T Y); reveals K cross-covariances "
        "instead of the sum",
    )
    map_holder: MapHolder = Field(
        MapHolder.client,
        description="client: upload Enc(X) and fetch Enc(X^T Y); provider: upload X in plaintext (embeddings "
        "of public texts) and let the provider solve and fold the map into a head of this tenant's own",
    )
    map_method: str | None = Field(
        None,
        max_length=64,
        description="provider-held only: the map method the provider solves (helix_alignment.methods; "
        "methods needing the provider's Y^T Y are refused); default ridge_scaled",
    )
    map_params: dict[MapParamName, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=8, description="provider-held only: the method's parameters (lam, kappa, rank)"
    )


class AlignmentSession(_Strict):
    session_id: Identifier
    head_id: Identifier
    corpus_id: Identifier
    key_id: Identifier | None = Field(description="None for a provider-held alignment (no ciphertexts)")
    parameter_set: str
    state: AlignmentState
    num_samples: int = Field(description="public corpus size plus published head texts if included")
    feature_dim: int
    samples_per_ciphertext: int = Field(description="m = 2^stride_bits samples per data ciphertext")
    stride_bits: int = Field(0, description="log2 m: the stride layout of helix_he.packing")
    max_data_scale_bits: int = Field(30, description="the largest X scale (log2) the provider accepts")
    num_ciphertexts: int
    received_ciphertexts: int
    missing_ciphertexts: list[int] = Field(
        default_factory=list,
        description="first (up to 256) indices not yet uploaded, so an interrupted upload can resume",
    )
    computed_columns: int
    output_columns: int = Field(description="the provider's embedding dimension d_A")
    validation_folds: int = Field(0, description="K if the result is per fold (fold k: shared_protocol.folds), else 0")
    error: str | None = None
    created_at: datetime
    expires_at: datetime
    map_holder: MapHolder = Field(
        MapHolder.client,
        description="provider: the chunks are plaintext row blocks of X (samples_per_ciphertext rows per block, "
        "num_ciphertexts blocks; PUT .../embeddings), and the result is `derived_head_id`",
    )
    derived_head_id: Identifier | None = Field(
        None, description="provider-held, once done: the head with the map folded in, to classify Enc(x_B) with"
    )
    map_choice: dict[str, float] = Field(
        default_factory=dict, description="provider-held, once done: what the map method chose (lambda, kappa, ...)"
    )


class AlignmentChunkHeader(_Strict):
    """Frame header for PUT /v1/alignments/{id}/chunks: ciphertexts [start, start + count), each at
    the last modulus level (one prime) in the session's stride layout."""

    start: int = Field(ge=0)
    count: int = Field(ge=1)
    data_scale_bits: int = Field(ge=10, le=50, description="log2 of the scale the client encoded X with")


class AlignmentResultHeader(_Strict):
    """Frame header of GET /v1/alignments/{id}/result. With m = 2^stride_bits, blob g encrypts
    columns [g*m, (g+1)*m) of X^T Y: (X^T Y)[a, g*m + j] at coefficient a*m + j (a < feature_dim),
    every other coefficient uniformly random modulo the prime. `y_sum` (the column sums of Y over
    the same samples) is what the affine map's bias needs; the paper's protocol reveals it too (as
    the product with a constant-1 column)."""

    session_id: Identifier
    feature_dim: int
    output_columns: int
    stride_bits: int = Field(ge=0, le=13, description="log2 of the columns per result ciphertext")
    value_scale: float = Field(description="divide decrypted coefficients by this scale")
    y_sum: list[float] = Field(description="1^T Y over the session's samples, one value per output column")
    fold_sizes: list[int] = Field(
        default_factory=list,
        description="per-fold results only: the K fold sizes; the "
        "blobs are then K runs of the groups above, fold 0 first, and X^T Y is their sum",
    )
    fold_y_sums: list[list[float]] = Field(default_factory=list, description="per-fold results only: 1^T Y_k per fold")


class EmbeddingChunkHeader(_Strict):
    """Frame header for PUT /v1/alignments/{id}/embeddings (provider-held alignments): row blocks
    [start, start + count) of X, block i holding rows [i*m, min((i+1)*m, n)) as little-endian float64,
    row-major, m = the session's samples_per_ciphertext. These are the client's embeddings of public
    texts: they reveal what the map reveals, a linear surrogate of its encoder on public text."""

    start: int = Field(ge=0)
    count: int = Field(ge=1)


# --- private inference -------------------------------------------------------------------------
class ClassifyHeader(_Strict):
    """Frame header for POST /v1/classify: `num_queries` groups of one query ciphertext each."""

    head_id: Identifier
    key_id: Identifier
    num_queries: int = Field(ge=1)
    query_scale_bits: int = Field(ge=10, le=50)


class ClassifyBatchHeader(_Strict):
    """Frame header for POST /v1/classify/batch: feature-major packing, one ciphertext per embedding
    dimension (`dim` of them), coefficient t of ciphertext i holding x[t, i] for `num_queries` <= N
    queries. The provider answers with one ciphertext per class whose coefficient t is query t's
    logit; only scalar multiply-adds, so thousands of queries cost about as much as `dim` queries."""

    head_id: Identifier
    key_id: Identifier
    num_queries: int = Field(ge=1)
    dim: int = Field(ge=1)
    query_scale_bits: int = Field(ge=10, le=50)


class ClassifyBatchReplyHeader(_Strict):
    """One ciphertext per class; each carries c0 only at coefficients [0, num_queries)."""

    head_id: Identifier
    num_queries: int
    num_classes: int
    noise_flooding_bits: int = 0


class ClassifyReplyHeader(_Strict):
    """Frame header of the classify reply: for each query, `ciphertexts_per_query` blobs; group g
    carries logits for classes `class_groups[g]` at `output_positions[g]`, all else random. In
    `ranking` mode the groups index the class pairs instead (pair p: the p-th of
    `itertools.combinations(range(num_classes), 2)`), each output a secretly scaled difference."""

    head_id: Identifier
    num_queries: int
    ciphertexts_per_query: int
    class_groups: list[list[int]]
    output_positions: list[list[int]]
    num_classes: int
    noise_flooding_bits: int = 0
    output_mode: OutputMode = OutputMode.logits


# --- admin -------------------------------------------------------------------------------------
class HeadCreateFromDataset(_Strict):
    """Train a head on the provider's own embeddings of a named dataset directory's split."""

    name: Identifier
    dataset: Identifier = Field(description="folder name under the provider's dataset directory")
    split: Identifier = "train"
    task: str | None = None
    max_examples: int | None = Field(None, ge=2)
    in_distribution_texts: int = Field(64, ge=0, le=128)
    regularization_c: RegularizationC = 1.0
    seed: Seed = 0
    output_mode: OutputMode = Field(OutputMode.logits, description="what classify replies reveal (see OutputMode)")
    map_holder: MapHolder = Field(MapHolder.client, description="who may hold the alignment map (see MapHolder)")


class HeadTrainingReport(_Strict):
    head: HeadInfo
    train_examples: int
    train_accuracy: float
    seconds: float


class JobState(str, Enum):
    """Where an admin job is: waiting to start, working, or finished one of three ways."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class AdminJob(_Strict):
    """Long admin work (a head training) run as a job: answered 202 with `Prefer: respond-async`,
    followed at /v1/admin/jobs/{job_id}, cancelled with DELETE there."""

    job_id: Identifier
    kind: str = Field("head_training", description="what the job does (head_training)")
    state: JobState
    head_id: Identifier = Field(description="the head the job trains (the requested name)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timeout_seconds: float = Field(description="the job is stopped, and fails, when it runs longer than this")
    pid: int | None = Field(None, description="the training process on the provider's host while the job runs")
    report: HeadTrainingReport | None = Field(None, description="when succeeded, while the trained head exists")
    error: str | None = Field(None, description="why the job failed or was cancelled")
    error_code: str | None = Field(
        None, description="the stable code a synchronous request would have answered with (e.g. training_timeout)"
    )


class CorpusCreate(_Strict):
    """Add a public corpus: either literal texts or a sample of a dataset folder's JSONL file."""

    name: Identifier
    texts: list[str] | None = None
    dataset: Identifier | None = None
    file: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}\.jsonl$")] | None = None
    limit: int | None = Field(None, ge=1)
    seed: Seed = 0


class ClientRecord(_Strict):
    client_name: str
    keys: list[KeyInfo]


class HeadEvaluateRequest(_Strict):
    """Admin: accuracy of a head on the provider's own embeddings of a dataset split."""

    dataset: Identifier
    split: Identifier = "test"
    limit: int | None = Field(None, ge=1)
    seed: Seed = 0


class HeadEvaluateResponse(_Strict):
    head_id: Identifier
    examples: int
    accuracy: float
    predictions: list[int]


class ReferenceLogitsRequest(_Strict):
    """Admin: plaintext logits for embeddings already in the provider's space. A measuring aid for the
    operator (e.g. to check encrypted results against plaintext); it bypasses the privacy protocol."""

    embeddings: list[list[float]] = Field(min_length=1, max_length=20000)


class ReferenceLogitsResponse(_Strict):
    head_id: Identifier
    logits: list[list[float]]
