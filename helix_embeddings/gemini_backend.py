"""Gemini embeddings (spec ``gemini:<model>[?task_type=...&dimensions=N&base_url=URL&...]``).

Uses the official ``google-genai`` SDK in Gemini Developer API mode (never Vertex):
``client.models.embed_content`` = ``POST {base}/v1beta/models/{model}:batchEmbedContents``
with ``{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
"outputDimensionality"?, "taskType"?}, ...]}``; vectors come back as ``embeddings[i].values``.

* Key: ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY`` (sent as ``x-goog-api-key``).
  Base URL: ``base_url`` option, else ``GEMINI_BASE_URL``, else ``GOOGLE_GEMINI_BASE_URL``
  (the SDK's own); without the ``/v1beta`` part, which the SDK appends.
* ``api_version`` defaults to ``v1beta``, where the Gemini API reference documents
  ``batchEmbedContents`` (google-genai >= 3 would otherwise pick ``v1``).
* Limit (API reference): at most 100 requests per batchEmbedContents call.
* ``dimensions`` maps to ``output_dimensionality``. Gemini does not re-normalise
  truncated outputs; like every HELIX backend we return what the API emits.
* ``task_type`` (e.g. ``CLASSIFICATION``) is sent only when given, and is in ``model_id``.
* The SDK does not retry unless configured to; our policy applies (:mod:`helix_embeddings.retry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .cloud import CloudEmbedder, CloudSettings, failure_from_http, read_settings, transport_failure
from .retry import Failure

BACKEND = "gemini"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
URL_ENVS = ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
DEFAULT_API_VERSION = "v1beta"


class GeminiEmbedder(CloudEmbedder):
    """Embedder over the Gemini API's batchEmbedContents endpoint."""

    backend = BACKEND
    max_items = 100
    known_dims = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768}
    key_envs = KEY_ENVS

    def __init__(
        self, settings: CloudSettings, task_type: str | None = None, api_version: str = DEFAULT_API_VERSION
    ) -> None:
        """Build the SDK client (no request is made unless the model's size is unknown)."""
        self.task_type = task_type.upper() if task_type else None
        http_options = types.HttpOptions(
            base_url=settings.base_url, api_version=api_version, timeout=int(settings.timeout * 1000)
        )
        self.client = genai.Client(api_key=settings.api_key, vertexai=False, http_options=http_options)
        super().__init__(
            settings,
            {"dimensions": settings.dimensions, "base_url": settings.base_url, "task_type": self.task_type},
        )

    def _request(self, texts: list[str]) -> Sequence[Sequence[float]]:
        config = types.EmbedContentConfig(output_dimensionality=self.settings.dimensions, task_type=self.task_type)
        contents: list[types.PartUnion] = [*texts]  # one request (one Content) per text
        response = self.client.models.embed_content(model=self.model, contents=contents, config=config)
        embeddings = response.embeddings or []
        if any(e.values is None for e in embeddings):
            raise ValueError(f"{self.model_id}: response has an embedding without values")
        return [list(e.values or []) for e in embeddings]

    def _classify(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            headers = dict(response.headers) if response is not None and hasattr(response, "headers") else None
            return failure_from_http(int(exc.code) if exc.code else None, headers, str(exc.message or exc.status))
        return transport_failure(exc)


def from_spec(name: str, options: Mapping[str, str]) -> GeminiEmbedder:
    """Registry factory for ``gemini:<model>``; see the module docstring for options."""
    settings = read_settings(BACKEND, name, options, KEY_ENVS, URL_ENVS, frozenset({"task_type", "api_version"}))
    return GeminiEmbedder(
        settings,
        task_type=options.get("task_type") or None,
        api_version=options.get("api_version") or DEFAULT_API_VERSION,
    )
