"""What one alignment is asked to do, fixed before it starts: from the agent's settings and the
caller's request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .api_models import AlignmentRequest
from .settings import ClientSettings


@dataclass(frozen=True)
class AlignmentConfig:
    head_id: str
    corpus_id: str
    client_name: str
    ridge_lambda: float
    include_head_texts: bool
    parameter_set: str | None  # None: the provider's default
    chunk_ciphertexts: int
    map_method: str = "ridge"
    map_params: Mapping[str, float | int] = field(default_factory=dict)
    poll_seconds: float = 0.25  # between looks at the provider's compute progress
    map_holder: str = "client"  # or "provider": the provider solves the map and folds it into a head

    @classmethod
    def for_request(
        cls, settings: ClientSettings, body: AlignmentRequest, map_holder: str = "client"
    ) -> AlignmentConfig:
        method, params = choose_method(settings, body)
        return cls(
            head_id=body.head_id,
            corpus_id=body.corpus_id,
            client_name=settings.client_name,
            ridge_lambda=settings.ridge_lambda if body.ridge_lambda is None else body.ridge_lambda,
            include_head_texts=body.include_head_texts,
            parameter_set=settings.parameter_set,
            chunk_ciphertexts=settings.alignment_chunk_ciphertexts,
            map_method=method,
            map_params=params,
            map_holder=map_holder,
        )


def choose_method(settings: ClientSettings, body: AlignmentRequest) -> tuple[str, dict[str, float | int]]:
    """An explicit ridge_lambda asks for the paper's ridge; otherwise the request's or the agent's method.
    The agent's parameter overrides (kappa, rank) apply only to the agent's own method."""
    if body.ridge_lambda is not None and body.map_method in (None, "ridge"):
        return "ridge", {}
    if body.map_method is not None:
        return body.map_method, {}
    return settings.alignment_method, settings.map_params()
