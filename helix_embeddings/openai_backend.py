"""OpenAI embeddings (spec ``openai:<model>[?dimensions=N&base_url=URL&...]``).

Uses the official ``openai`` SDK: ``client.embeddings.create`` = ``POST {base}/embeddings``
with ``{"model", "input": [...], "encoding_format": "float", "dimensions"?}``.
We ask for ``float`` explicitly (the SDK otherwise requests base64 and decodes it),
which keeps the wire format the one documented for the REST API.

* Key: ``OPENAI_API_KEY``. Base URL: ``base_url`` option, else ``OPENAI_BASE_URL``
  (include the ``/v1`` suffix, e.g. ``http://127.0.0.1:8000/v1``).
* Limits (API reference): at most 2048 inputs and 300k tokens per request;
  tokens are bounded by UTF-8 bytes (see :mod:`helix_embeddings.batching`).
* ``dimensions`` is only accepted by text-embedding-3 and later models.
* The SDK's own retries are disabled (``max_retries=0``): see :mod:`helix_embeddings.retry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import openai

from .cloud import CloudEmbedder, CloudSettings, failure_from_http, read_settings, transport_failure
from .retry import Failure

BACKEND = "openai"
KEY_ENVS = ("OPENAI_API_KEY",)
URL_ENVS = ("OPENAI_BASE_URL",)
_NO_DIMENSIONS = {"text-embedding-ada-002"}


class OpenAIEmbedder(CloudEmbedder):
    """Embedder over the OpenAI embeddings endpoint."""

    backend = BACKEND
    max_items = 2048
    max_weight = 300_000
    known_dims = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
    key_envs = KEY_ENVS

    def __init__(self, settings: CloudSettings) -> None:
        """Build the SDK client (no request is made unless the model's size is unknown)."""
        if settings.dimensions is not None and settings.model in _NO_DIMENSIONS:
            raise ValueError(f"{BACKEND}:{settings.model} does not support 'dimensions' (text-embedding-3+ only)")
        self.client = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=0,
        )
        super().__init__(settings, {"dimensions": settings.dimensions, "base_url": settings.base_url})

    def _request(self, texts: list[str]) -> Sequence[Sequence[float]]:
        extra: dict[str, Any] = {}
        if self.settings.dimensions is not None:
            extra["dimensions"] = self.settings.dimensions
        response = self.client.embeddings.create(model=self.model, input=texts, encoding_format="float", **extra)
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    def _classify(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, openai.APIStatusError):
            return failure_from_http(exc.status_code, exc.response.headers, str(exc.message))
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return failure_from_http(None, None, str(exc))
        return transport_failure(exc)


def from_spec(name: str, options: Mapping[str, str]) -> OpenAIEmbedder:
    """Registry factory for ``openai:<model>``; see the module docstring for options."""
    return OpenAIEmbedder(read_settings(BACKEND, name, options, KEY_ENVS, URL_ENVS))
