"""The client agent's own REST models (its API to local applications, not the provider wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared_protocol.messages import Identifier

#: Who holds an alignment's map: the client (it solves and stores the map) or the provider (it folds the
#: map into a head of this tenant's own, and the agent classifies its own embeddings against that head).
Holder = Literal["client", "provider"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlignmentRequest(_Strict):
    """Ids are checked with the wire's Identifier pattern before any of them reaches a provider URL."""

    head_id: Identifier
    corpus_id: Identifier
    ridge_lambda: float | None = Field(None, ge=0, description="given: a plain ridge map with this lambda")
    map_method: str | None = Field(None, description="default: the agent's alignment_method setting")
    include_head_texts: bool = True
    map_holder: Holder | None = Field(
        None,
        description="who holds the map; default: the client, unless the head offers only provider-held maps",
    )


class AlignmentProgressView(_Strict):
    phase: str
    uploaded_ciphertexts: int
    total_ciphertexts: int
    computed_columns: int
    total_columns: int


class AlignmentJobView(_Strict):
    job_id: str
    head_id: str
    corpus_id: str
    state: str
    progress: AlignmentProgressView
    map_id: str | None
    error: str | None
    created_at: str


class ClassifyRequest(_Strict):
    texts: list[str] = Field(min_length=1, max_length=10000)
    head_id: Identifier
    map_id: Identifier | None = Field(None, description="default: the newest map for this head and embedder")


class ClassifyResult(_Strict):
    """One text's result. A `ranking` head reveals the order of its classes only: `probabilities` and
    `logits` are then null (the values the agent decrypts are pairwise differences times the
    provider's secret random factors, which say nothing about confidence)."""

    text_index: int
    label: str
    ranking: list[str] = Field(description="the head's class names, most likely first (label = ranking[0])")
    probabilities: dict[str, float] | None = Field(description="softmax of the logits; null for ranking heads")
    logits: list[float] | None = Field(description="the head's logits; null for ranking heads")


class ClassifyResponse(_Strict):
    head_id: str
    map_id: str
    map_holder: Holder = Field("client", description="provider: the map is folded into a head derived for us")
    output_mode: str = Field(description="the head's output mode: 'logits' or 'ranking'")
    results: list[ClassifyResult]
    latency_ms: float
    he_latency_ms: float
    bytes_sent: int
    bytes_received: int


class Health(_Strict):
    status: str
    embedder: str | None
    provider_url: str
