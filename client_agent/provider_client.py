"""Client for the provider's API (over `http_transport`). Verifies the provider's certificate against the configured
CA; authenticates as its tenant with an API key (`Authorization: Bearer <api key>` on every call);
speaks JSON for control messages and HELIX frames for ciphertexts.

Calls that may safely be repeated are retried while the provider is away (a restart, a kill -9, a
proxy answering 502/503/504), with capped exponential backoff and full jitter, for at most
`retry_seconds`: GET, PUT and DELETE, plus the POSTs that are idempotent by design (classify has no
side effect; starting a computation that runs or ran returns the session as it is). Any call is
retried when the connection was refused, since then nothing reached the provider. When the provider
stays away the caller gets `ProviderUnreachable` (the agent answers 503 `provider_unavailable`,
naming the provider, with Retry-After)."""

from __future__ import annotations

import logging
import math
import random
import ssl
import time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from helix_web.request_id import request_id_headers
from shared_protocol.framing import FRAME_MEDIA_TYPE, decode_frame, encode_frame
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentResultHeader,
    AlignmentSession,
    ClassifyBatchHeader,
    ClassifyBatchReplyHeader,
    ClassifyHeader,
    ClassifyReplyHeader,
    CorpusInfo,
    CorpusTexts,
    EmbeddingChunkHeader,
    HeadInfo,
    HeadTexts,
    KeyChallenge,
    KeyInfo,
    KeyRegistrationHeader,
    ServiceInfo,
)

from .http_transport import ConnectFailed, HttpReply, HttpTransport, TransportError

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("helix.agent.provider")


class ProviderError(RuntimeError):
    def __init__(self, status: int, code: str, detail: str, retry_after: str | None = None) -> None:
        super().__init__(f"provider answered {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after  # the provider's Retry-After on a 429, passed on as it came


class ProviderUnreachable(ProviderError):
    """No usable answer from the provider, after the retries a call allows (refused, reset, timed out,
    TLS failure, or 502/503/504): the agent's callers get 503 `provider_unavailable` naming the
    provider and when to try again (`retry_after` seconds), not a crash."""

    def __init__(self, base_url: str, reason: str, retry_after: int) -> None:
        super().__init__(
            503, "provider_unavailable", f"the provider at {base_url} is unavailable: {reason}", str(retry_after)
        )
        self.retry_seconds = retry_after


#: Answers that mean "the provider (or a proxy before it) is away for now", worth another try.
RETRY_STATUSES = frozenset({502, 503, 504})
#: Methods whose repetition has the effect of one call (RFC 9110); other calls opt in per call.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class Backoff:
    """Capped exponential backoff with full jitter, within a total time budget."""

    def __init__(self, budget_seconds: float, first: float = 0.1, cap: float = 2.0) -> None:
        self._deadline = time.monotonic() + budget_seconds
        self._delay = first
        self._cap = cap

    def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) when the budget is spent."""
        pause = random.uniform(0, self._delay)
        if time.monotonic() + pause > self._deadline:
            return False
        time.sleep(pause)  # backoff between attempts at a provider that is away
        self._delay = min(self._cap, self._delay * 2)
        return True


def segment(value: str) -> str:
    """One URL path segment: ids are percent-encoded so that none can steer a request to another
    provider path ("/", "..", "?" and control characters never reach the URL as such). The dot
    segments are encoded too, or the URL would be normalised to the parent path before it is sent."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


class ProviderClient:
    def __init__(
        self,
        base_url: str,
        ca_cert: Path | None,
        timeout: float = 600.0,
        api_key: str | None = None,
        retry_seconds: float = 10.0,
    ) -> None:
        verify = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert else ssl.create_default_context()
        self.base_url = base_url.rstrip("/")
        self.retry_seconds = retry_seconds
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpTransport(self.base_url, verify, timeout, headers)
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self, method: str, path: str, *, idempotent: bool | None = None, retry: bool = True, **kwargs: Any
    ) -> HttpReply:
        """One call, retried while the provider is away if repeating it is safe (module docstring); a
        provider that stays away is ProviderUnreachable, an error answer ProviderError. It carries the
        id of the agent request it serves (`X-Request-ID`), so both logs name the same id."""
        headers = {**request_id_headers(), **kwargs.pop("headers", {})}
        repeatable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        backoff = Backoff(self.retry_seconds if retry else 0.0)
        retried = False
        while True:
            try:
                resp = self._http.request(method, path, headers=headers, **kwargs)
            except TransportError as exc:
                # A refused connection reached nobody, so even a non-idempotent call may be sent again.
                if (repeatable or isinstance(exc, ConnectFailed)) and backoff.wait():
                    retried = True
                    log.warning("provider call %s retried: %s", method, type(exc).__name__)
                    continue
                raise self._unavailable(f"it is unreachable ({exc})") from None
            if resp.status_code in RETRY_STATUSES:
                if repeatable and backoff.wait():
                    retried = True
                    log.warning("provider call %s retried: it answered %d", method, resp.status_code)
                    continue
                raise self._unavailable(f"it answered {resp.status_code}: {_error_detail(resp)}")
            if retried and method == "DELETE" and resp.status_code == 404:
                return resp  # an earlier attempt deleted it, and its answer was lost
            return self._check(resp)

    def _unavailable(self, reason: str) -> ProviderUnreachable:
        return ProviderUnreachable(self.base_url, reason, retry_after=max(1, math.ceil(self.retry_seconds)))

    def _check(self, resp: HttpReply) -> HttpReply:
        self.bytes_received += len(resp.content)
        if not resp.is_success:  # a redirect is no answer either: the client never follows one
            retry_after = resp.headers.get("retry-after")
            try:
                body = resp.json()
                code, detail = body.get("error", "error"), body.get("detail", resp.text)
            except ValueError:
                raise ProviderError(resp.status_code, "error", resp.text, retry_after) from None
            raise ProviderError(resp.status_code, code, detail, retry_after)
        return resp

    def _get(self, path: str, model: type[M], **params: str | int) -> M:
        return model.model_validate(self._send("GET", path, params=params).json())

    def _post_frame(self, method: str, path: str, header: BaseModel, blobs: list[bytes]) -> HttpReply:
        body = encode_frame(header, blobs)
        self.bytes_sent += len(body)
        return self._send(method, path, content=body, headers={"content-type": FRAME_MEDIA_TYPE})

    def not_ready_reason(self, timeout: float) -> str | None:
        """None if the provider's /readyz answers 200 within `timeout` seconds, else why not (naming
        the provider): a readiness probe must answer quickly even when the provider hangs."""
        try:
            self._send("GET", "/readyz", timeout=timeout, retry=False)
        except ProviderError as exc:
            if isinstance(exc, ProviderUnreachable):
                return exc.detail
            return f"the provider at {self.base_url} is not ready: {exc.status} {exc.code}: {exc.detail}"
        return None

    # --- public resources --------------------------------------------------------------------------
    def info(self) -> ServiceInfo:
        return self._get("/v1/info", ServiceInfo)

    def heads(self) -> list[HeadInfo]:
        return TypeAdapter(list[HeadInfo]).validate_python(self._send("GET", "/v1/heads").json())

    def head(self, head_id: str) -> HeadInfo:
        return self._get(f"/v1/heads/{segment(head_id)}", HeadInfo)

    def head_texts(self, head_id: str) -> HeadTexts:
        return self._get(f"/v1/heads/{segment(head_id)}/texts", HeadTexts)

    def corpora(self) -> list[CorpusInfo]:
        return TypeAdapter(list[CorpusInfo]).validate_python(self._send("GET", "/v1/corpora").json())

    def corpus(self, corpus_id: str) -> CorpusInfo:
        return self._get(f"/v1/corpora/{segment(corpus_id)}", CorpusInfo)

    def corpus_texts(self, corpus_id: str, page: int = 2000) -> tuple[list[str], str]:
        texts: list[str] = []
        sha = ""
        while True:
            part = self._get(f"/v1/corpora/{segment(corpus_id)}/texts", CorpusTexts, offset=len(texts), limit=page)
            sha = part.sha256
            texts.extend(part.texts)
            if not part.texts or len(texts) >= part.total:
                return texts, sha

    # --- keys, alignment, inference ------------------------------------------------------------
    def key_challenge(self) -> KeyChallenge:
        """A fresh single-use challenge: the seed the next key's uniform halves are expanded from."""
        resp = self._send("POST", "/v1/keys/challenges")
        return KeyChallenge.model_validate(resp.json())

    def register_key(
        self, header: KeyRegistrationHeader, public_key: bytes, galois_keys: bytes | None = None
    ) -> KeyInfo:
        """Register public material: the public key, plus Galois keys for alignment keys, both built on
        the seed of the challenge `header.challenge_id` names."""
        blobs = [public_key] + ([galois_keys] if galois_keys else [])
        return KeyInfo.model_validate(self._post_frame("POST", "/v1/keys", header, blobs).json())

    def revoke_key(self, key_id: str) -> None:
        self._send("DELETE", f"/v1/keys/{segment(key_id)}")

    def create_alignment(self, body: AlignmentCreate) -> AlignmentSession:
        resp = self._send(
            "POST", "/v1/alignments", content=body.model_dump_json(), headers={"content-type": "application/json"}
        )
        return AlignmentSession.model_validate(resp.json())

    def upload_chunk(self, session_id: str, header: AlignmentChunkHeader, blobs: list[bytes]) -> AlignmentSession:
        return AlignmentSession.model_validate(
            self._post_frame("PUT", f"/v1/alignments/{segment(session_id)}/chunks", header, blobs).json()
        )

    def upload_embeddings(self, session_id: str, header: EmbeddingChunkHeader, blobs: list[bytes]) -> AlignmentSession:
        """Provider-held alignments: row blocks of the client's embeddings of the public texts."""
        return AlignmentSession.model_validate(
            self._post_frame("PUT", f"/v1/alignments/{segment(session_id)}/embeddings", header, blobs).json()
        )

    def delete_head(self, head_id: str) -> None:
        """Delete a head derived for this tenant by a provider-held alignment."""
        self._send("DELETE", f"/v1/heads/{segment(head_id)}")

    def start_compute(self, session_id: str) -> AlignmentSession:
        return AlignmentSession.model_validate(
            self._send("POST", f"/v1/alignments/{segment(session_id)}/compute", idempotent=True).json()
        )

    def session(self, session_id: str) -> AlignmentSession:
        return self._get(f"/v1/alignments/{segment(session_id)}", AlignmentSession)

    def alignment_result(self, session_id: str, max_blob_bytes: int) -> tuple[AlignmentResultHeader, list[bytes]]:
        resp = self._send("GET", f"/v1/alignments/{segment(session_id)}/result")
        return decode_frame(resp.content, AlignmentResultHeader, max_blobs=65536, max_blob_bytes=max_blob_bytes)

    def delete_session(self, session_id: str) -> None:
        self._send("DELETE", f"/v1/alignments/{segment(session_id)}")

    def classify_batch(
        self, header: ClassifyBatchHeader, blobs: list[bytes], max_blob_bytes: int
    ) -> tuple[ClassifyBatchReplyHeader, list[bytes], int, int]:
        """Feature-major batch: -> (reply header, one ciphertext per class, bytes sent, bytes received)."""
        body = encode_frame(header, blobs)
        self.bytes_sent += len(body)
        resp = self._send(
            "POST", "/v1/classify/batch", content=body, headers={"content-type": FRAME_MEDIA_TYPE}, idempotent=True
        )
        reply, out = decode_frame(resp.content, ClassifyBatchReplyHeader, max_blobs=4096, max_blob_bytes=max_blob_bytes)
        return reply, out, len(body), len(resp.content)

    def classify(
        self, header: ClassifyHeader, blobs: list[bytes], max_blob_bytes: int
    ) -> tuple[ClassifyReplyHeader, list[bytes], int, int]:
        """-> (reply header, reply ciphertexts, bytes sent, bytes received) for this call. Sizes are
        measured on this call's own body and reply (the running totals are shared between threads)."""
        body = encode_frame(header, blobs)
        self.bytes_sent += len(body)
        resp = self._send(
            "POST", "/v1/classify", content=body, headers={"content-type": FRAME_MEDIA_TYPE}, idempotent=True
        )
        reply, out = decode_frame(
            resp.content, ClassifyReplyHeader, max_blobs=max(1, len(blobs)) * 64, max_blob_bytes=max_blob_bytes
        )
        return reply, out, len(body), len(resp.content)


def _error_detail(resp: HttpReply) -> str:
    try:
        return str(resp.json().get("detail", resp.text[:200]))
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
