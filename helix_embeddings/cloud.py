"""Shared machinery for API-backed embedders (``openai:``, ``cohere:``, ``gemini:``).

Why one base class: the three adapters differ only in how a batch is sent and
how the SDK reports errors. Batching to the API's documented limits, retries,
progress, credential lookup and the ``model_id`` convention are the same and
live here, so the adapters stay small and behave identically.

Spec options common to every cloud backend:

* ``dimensions=N``   requested output size (sent as the API's own parameter).
* ``base_url=URL``   API root; otherwise the backend's env var, else the SDK default.
* ``timeout=S``      per-request timeout in seconds (default 60).
* ``max_attempts=N`` calls per batch including the first (default 6).
* ``retry_base=S``   first backoff delay in seconds, doubling per retry (default 1).

``model_id`` is ``<backend>:<model>`` plus, in query form, every setting that
can change the vectors: ``dimensions``, backend-specific ones such as Cohere's
``input_type``, and a non-default ``base_url`` (another server may serve a
different model under the same name, and cached vectors must not mix).
"""

from __future__ import annotations

import builtins
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlencode

import numpy as np

from .base import as_embedding_matrix, as_text_list
from .batching import plan_batches
from .errors import MissingCredentialsError
from .progress import progress_bar
from .retry import Failure, RetryPolicy, Verdict, call_with_retries, parse_retry_after, verdict_for_status
from .specs import float_option, int_option, optional_int_option, reject_unknown_options

COMMON_OPTIONS = frozenset({"base_url", "dimensions", "timeout", "max_attempts", "retry_base"})
DEFAULT_TIMEOUT_S = 60.0
#: Sent in place of an empty text, which the APIs reject with a 400 (documented in docs/embedders.md).
EMPTY_TEXT_STAND_IN = " "
_PROBE_TEXT = "dimension probe"


@dataclass(frozen=True)
class CloudSettings:
    """Everything an adapter needs to build its SDK client, read from spec options and env."""

    model: str
    api_key: str
    base_url: str | None
    dimensions: int | None
    timeout: float
    policy: RetryPolicy


def read_api_key(backend: str, env_names: Sequence[str]) -> str:
    """First non-empty of ``env_names``; a clear :class:`MissingCredentialsError` otherwise.

    Why read it ourselves rather than let the SDK do it: each SDK words a missing
    key differently (or only fails at the first request), and ``load_embedder``
    should fail at load time, naming the variables to set.
    """
    for name in env_names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise MissingCredentialsError(f"{backend}: no API key found; set {' or '.join(env_names)} in the environment")


def read_base_url(options: Mapping[str, str], env_names: Sequence[str]) -> str | None:
    """``base_url`` spec option, else the first set env var, else None (SDK default)."""
    if options.get("base_url", "").strip():
        return options["base_url"].strip()
    for name in env_names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def read_settings(
    backend: str,
    model: str,
    options: Mapping[str, str],
    key_envs: Sequence[str],
    url_envs: Sequence[str],
    extra_options: frozenset[str] = frozenset(),
) -> CloudSettings:
    """Validate options and gather credentials; raises ValueError on any problem."""
    reject_unknown_options(backend, options, set(COMMON_OPTIONS | extra_options))
    if not model.strip():
        raise ValueError(f"{backend}: empty model name")
    policy = RetryPolicy(
        max_attempts=int_option(options, "max_attempts", RetryPolicy.max_attempts),
        base_delay=float_option(options, "retry_base", RetryPolicy.base_delay),
    )
    return CloudSettings(
        model=model,
        api_key=read_api_key(backend, key_envs),
        base_url=read_base_url(options, url_envs),
        dimensions=optional_int_option(options, "dimensions"),
        timeout=float_option(options, "timeout", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S,
        policy=policy,
    )


def cloud_model_id(backend: str, model: str, output_options: Mapping[str, object]) -> str:
    """``backend:model[?k=v&...]`` over the output-changing options that are set, sorted."""
    pairs = sorted((k, str(v)) for k, v in output_options.items() if v is not None and v != "")
    return f"{backend}:{model}" + (f"?{urlencode(pairs)}" if pairs else "")


def _transport_error_types() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of the HTTP stacks the SDKs use (httpx, httpx2)."""
    found: list[type[BaseException]] = [builtins.ConnectionError, builtins.TimeoutError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


def failure_from_http(status: int | None, headers: Mapping[str, str] | None, detail: str = "") -> Failure:
    """Build a :class:`Failure` from an HTTP status and response headers."""
    if status is None:
        return Failure(Verdict.RETRY, None, None, detail)
    return Failure(verdict_for_status(status), status, parse_retry_after(headers), detail[:500])


def transport_failure(exc: BaseException) -> Failure | None:
    """RETRY for connection errors and timeouts of any supported HTTP stack, else None."""
    if isinstance(exc, _transport_error_types()):
        return Failure(Verdict.RETRY, None, None, str(exc)[:200] or type(exc).__name__)
    return None


class CloudEmbedder(ABC):
    """An :class:`~helix_embeddings.base.Embedder` that calls a remote embedding API.

    Subclasses set the class attributes and implement :meth:`_request` and
    :meth:`_classify`. ``dim`` comes from ``dimensions``, else the subclass's
    table of known models, else one probe request at construction.
    """

    backend: ClassVar[str]
    #: Documented per-request cap on the number of inputs.
    max_items: ClassVar[int]
    #: Per-request cap on summed UTF-8 bytes (an upper bound on tokens), if the API has a total cap.
    max_weight: ClassVar[int | None] = None
    #: Default output sizes of well-known models, so loading needs no request.
    known_dims: ClassVar[Mapping[str, int]] = {}
    #: Env vars holding the key, named in auth errors.
    key_envs: ClassVar[tuple[str, ...]]

    def __init__(self, settings: CloudSettings, output_options: Mapping[str, object]) -> None:
        """Store settings; the subclass must have built its client before calling this."""
        self.settings = settings
        self.model = settings.model
        self.policy = settings.policy
        self.model_id = cloud_model_id(self.backend, settings.model, output_options)
        dim = settings.dimensions or self.known_dims.get(settings.model)
        self.dim: int = dim if dim is not None else self._probe_dim()

    @abstractmethod
    def _request(self, texts: list[str]) -> Sequence[Sequence[float]]:
        """Send one batch (already within limits) and return its vectors, in order."""

    @abstractmethod
    def _classify(self, exc: BaseException) -> Failure | None:
        """Map an SDK exception to a :class:`Failure`, or None to let it propagate."""

    def _call(self, texts: list[str]) -> Sequence[Sequence[float]]:
        hint = f"Check {' / '.join(self.key_envs)}."
        return call_with_retries(lambda: self._request(texts), self._classify, self.policy, self.model_id, hint)

    def _probe_dim(self) -> int:
        """One request to learn the output size of a model we have no table entry for."""
        vectors = self._call([_PROBE_TEXT])
        if len(vectors) != 1 or not len(vectors[0]):
            raise ValueError(f"{self.model_id}: probe request returned no embedding")
        return len(vectors[0])

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed in API-sized batches (``batch_size`` can only lower the documented cap)."""
        items = as_text_list(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        cap = min(batch_size or self.max_items, self.max_items)
        with progress_bar(len(items), self.model_id, progress) as advance:
            for start, stop in plan_batches(items, cap, self.max_weight):
                batch = [t if t else EMPTY_TEXT_STAND_IN for t in items[start:stop]]
                out[start:stop] = as_embedding_matrix(self._call(batch), stop - start, self.dim)
                advance(stop - start)
        return as_embedding_matrix(out, len(items), self.dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim})"
