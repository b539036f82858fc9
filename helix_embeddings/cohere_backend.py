"""Cohere embeddings (spec ``cohere:<model>[?input_type=...&dimensions=N&base_url=URL&...]``).

Uses the official ``cohere`` SDK's v2 client: ``ClientV2.embed`` = ``POST {base}/v2/embed``
with ``{"model", "texts": [...], "input_type", "embedding_types": ["float"], "output_dimension"?}``;
the vectors come back under ``embeddings.float``.

* Key: ``COHERE_API_KEY``, else ``CO_API_KEY`` (the SDK's own name).
  Base URL: ``base_url`` option, else ``COHERE_BASE_URL``, else ``CO_API_URL``;
  without a path (e.g. ``http://127.0.0.1:8000``), since the SDK appends ``v2/embed``.
* ``input_type`` is required by v3+ models and changes the vectors, so it is in
  ``model_id``; HELIX classifies texts, hence the default ``classification``.
* Limit (API reference): at most 96 texts per call.
* ``dimensions`` maps to ``output_dimension`` (embed-v4 and newer: 256/512/1024/1536).
* The SDK's own retries are disabled (``max_retries=0``): see :mod:`helix_embeddings.retry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cohere
from cohere.core.api_error import ApiError

from .cloud import CloudEmbedder, CloudSettings, failure_from_http, read_settings, transport_failure
from .retry import Failure

BACKEND = "cohere"
KEY_ENVS = ("COHERE_API_KEY", "CO_API_KEY")
URL_ENVS = ("COHERE_BASE_URL", "CO_API_URL")
DEFAULT_BASE_URL = "https://api.cohere.com"
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
DEFAULT_INPUT_TYPE = "classification"


class CohereEmbedder(CloudEmbedder):
    """Embedder over Cohere's v2 embed endpoint."""

    backend = BACKEND
    max_items = 96
    known_dims = {
        "embed-v4.0": 1536,
        "embed-english-v3.0": 1024,
        "embed-multilingual-v3.0": 1024,
        "embed-english-light-v3.0": 384,
        "embed-multilingual-light-v3.0": 384,
    }
    key_envs = KEY_ENVS

    def __init__(self, settings: CloudSettings, input_type: str = DEFAULT_INPUT_TYPE) -> None:
        """Build the SDK client (no request is made unless the model's size is unknown)."""
        if input_type not in INPUT_TYPES:
            raise ValueError(f"{BACKEND}: input_type must be one of {list(INPUT_TYPES)}, got {input_type!r}")
        self.input_type = input_type
        self.client = cohere.ClientV2(
            api_key=settings.api_key,
            base_url=settings.base_url or DEFAULT_BASE_URL,
            timeout=settings.timeout,
            max_retries=0,
        )
        super().__init__(
            settings,
            {"dimensions": settings.dimensions, "base_url": settings.base_url, "input_type": input_type},
        )

    def _request(self, texts: list[str]) -> Sequence[Sequence[float]]:
        extra: dict[str, Any] = {}  # omitted rather than sent as null when unset
        if self.settings.dimensions is not None:
            extra["output_dimension"] = self.settings.dimensions
        response = self.client.embed(
            model=self.model,
            texts=texts,
            input_type=self.input_type,
            embedding_types=["float"],
            **extra,
        )
        vectors = response.embeddings.float_
        if vectors is None:
            raise ValueError(f"{self.model_id}: response has no 'float' embeddings")
        return vectors

    def _classify(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, ApiError):
            return failure_from_http(exc.status_code, exc.headers, str(exc.body))
        return transport_failure(exc)


def from_spec(name: str, options: Mapping[str, str]) -> CohereEmbedder:
    """Registry factory for ``cohere:<model>``; see the module docstring for options."""
    settings = read_settings(BACKEND, name, options, KEY_ENVS, URL_ENVS, frozenset({"input_type"}))
    return CohereEmbedder(settings, input_type=options.get("input_type", DEFAULT_INPUT_TYPE))
