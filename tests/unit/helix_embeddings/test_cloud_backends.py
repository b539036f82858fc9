"""Cloud embedding adapters (openai:, cohere:, gemini:) against local wire-format servers.

The real APIs cannot be reached from here, so each test runs a real HTTP server on
127.0.0.1 (``http.server`` in a thread, real sockets) that speaks the documented
request/response JSON of the three APIs, and drives the *official SDKs* at it
through the adapters' ``base_url`` option:

* OpenAI  ``POST /v1/embeddings``          {"model", "input": [...]} -> {"data": [{"index", "embedding"}]}
* Cohere  ``POST /v2/embed``               {"model", "texts", "input_type", "embedding_types"}
                                           -> {"embeddings": {"float": [...]}}
* Gemini  ``POST /v1beta/models/{m}:batchEmbedContents``  {"requests": [{"content": {"parts": [{"text"}]}}]}
                                           -> {"embeddings": [{"values": [...]}]}

The server enforces each API's per-request input cap (so a batching bug fails with a
400), checks the key header, records every request, and can be told to fail the next
N requests with a status (429/500/401...) and optional Retry-After header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest

from helix_embeddings import CachedEmbedder, load_embedder
from helix_embeddings.errors import EmbedderAuthError, EmbedderRequestError, MissingCredentialsError

API_KEY = "test-key-123"
KEY_ENVS = ("OPENAI_API_KEY", "COHERE_API_KEY", "CO_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
URL_ENVS = ("OPENAI_BASE_URL", "COHERE_BASE_URL", "CO_API_URL", "GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
LIMITS = {"openai": 2048, "cohere": 96, "gemini": 100}
OPENAI_MAX_TOKENS = 300_000
DEFAULT_DIM = 5  # what the server returns for a model when no output size is requested


def fake_vector(text: str, dim: int) -> list[float]:
    """Deterministic per-text vector (exactly representable in float32)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32).tolist()


def expected(texts: list[str], dim: int) -> np.ndarray:
    return np.array([fake_vector(t or " ", dim) for t in texts], dtype=np.float32)


@dataclass
class Recorded:
    api: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def n_inputs(self) -> int:
        return len(self.body.get("input") or self.body.get("texts") or self.body.get("requests") or [])


@dataclass
class FakeEmbeddingAPI:
    """A local server speaking the OpenAI, Cohere and Gemini embedding wire formats."""

    requests: list[Recorded] = field(default_factory=list)
    failures: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        for _ in range(times):
            self.failures.append((status, headers or {}))

    def sizes(self) -> list[int]:
        return [r.n_inputs for r in self.requests]

    def start(self) -> FakeEmbeddingAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                status, payload, headers = api.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- request handling -----------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        gemini = re.fullmatch(r"/v1beta/models/([^/:]+):batchEmbedContents", path.split("?")[0])
        api = "openai" if path == "/v1/embeddings" else "cohere" if path == "/v2/embed" else "gemini" if gemini else ""
        if not api:
            return 404, {"error": {"message": f"no route {path}"}}, {}
        with self.lock:
            self.requests.append(Recorded(api, path, headers, body))
            failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            return failure[0], error_body(api, failure[0], "scripted failure"), failure[1]
        key = (
            headers.get("x-goog-api-key")
            if api == "gemini"
            else headers.get("authorization", "").removeprefix("Bearer ")
        )
        if key != API_KEY:
            return 401, error_body(api, 401, "invalid api key"), {}
        if api == "openai":
            return self.openai(body)
        if api == "cohere":
            return self.cohere(body)
        assert gemini is not None
        return self.gemini(gemini.group(1), body)

    def openai(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        texts = body["input"]
        if not isinstance(texts, list) or len(texts) > LIMITS["openai"] or "" in texts:
            return 400, error_body("openai", 400, "'$.input' is invalid"), {}
        if sum(len(t.encode()) for t in texts) > OPENAI_MAX_TOKENS:
            return 400, error_body("openai", 400, "max 300000 tokens per request"), {}
        dim = body.get("dimensions") or DEFAULT_DIM
        data = []
        for i, text in enumerate(texts):
            vec = fake_vector(text, dim)
            if body.get("encoding_format") == "base64":
                vec = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()  # type: ignore[assignment]
            data.append({"object": "embedding", "index": i, "embedding": vec})
        data.reverse()  # the API gives an index per item; clients must not rely on order
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}, {}

    def cohere(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        texts = body.get("texts") or []
        if len(texts) > LIMITS["cohere"] or "input_type" not in body:
            return 400, error_body("cohere", 400, "invalid request: too many texts or no input_type"), {}
        dim = body.get("output_dimension") or DEFAULT_DIM
        vectors = [fake_vector(t, dim) for t in texts]
        payload = {
            "id": "fake-embed-id",
            "response_type": "embeddings_by_type",
            "embeddings": {"float": vectors},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": len(texts)}},
        }
        return 200, payload, {}

    def gemini(self, model: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        reqs = body.get("requests") or []
        if len(reqs) > LIMITS["gemini"] or any(r.get("model") != f"models/{model}" for r in reqs):
            return 400, error_body("gemini", 400, "at most 100 requests, each naming the model"), {}
        out = []
        for r in reqs:
            text = "".join(p["text"] for p in r["content"]["parts"])
            out.append({"values": fake_vector(text, r.get("outputDimensionality") or DEFAULT_DIM)})
        return 200, {"embeddings": out}, {}


def error_body(api: str, status: int, message: str) -> Any:
    if api == "openai":
        return {"error": {"message": message, "type": "error", "param": None, "code": str(status)}}
    if api == "cohere":
        return {"id": "err", "message": message}
    names = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the test's own key; no base URL from the developer's shell."""
    for name in KEY_ENVS + URL_ENVS + ("GOOGLE_GENAI_USE_VERTEXAI",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("COHERE_API_KEY", API_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)


@pytest.fixture()
def server() -> Iterator[FakeEmbeddingAPI]:
    api = FakeEmbeddingAPI().start()
    yield api
    api.stop()


FAST = "timeout=10&retry_base=0.01"


def spec_for(api: str, server: FakeEmbeddingAPI | str, extra: str = "", dim: int = 8) -> str:
    """A spec for ``api`` pointed at the fake server (or a root URL), with small vectors and fast retries."""
    root = server if isinstance(server, str) else server.url
    if api == "openai":
        head, url = "openai:text-embedding-3-small", f"{root}/v1"
    elif api == "cohere":
        head, url = "cohere:embed-v4.0", root
    else:
        head, url = "gemini:gemini-embedding-001", root
    return f"{head}?base_url={url}&dimensions={dim}&{FAST}" + (f"&{extra}" if extra else "")


APIS = ["openai", "cohere", "gemini"]
TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply.", "", "Ünïcödé 🎉 text"]


# --- request shapes -----------------------------------------------------------------------


def test_openai_request_shape(server: FakeEmbeddingAPI) -> None:
    emb = load_embedder(spec_for("openai", server))
    out = emb.embed(TEXTS)
    np.testing.assert_array_equal(out, expected(TEXTS, 8))
    (req,) = server.requests
    assert req.path == "/v1/embeddings"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert req.body == {
        "model": "text-embedding-3-small",
        "input": [t or " " for t in TEXTS],
        "dimensions": 8,
        "encoding_format": "float",
    }
    assert emb.dim == 8
    assert emb.model_id == f"openai:text-embedding-3-small?base_url={quote_plus(server.url + '/v1')}&dimensions=8"


def test_cohere_request_shape(server: FakeEmbeddingAPI) -> None:
    emb = load_embedder(spec_for("cohere", server, dim=256))
    np.testing.assert_array_equal(emb.embed(TEXTS), expected(TEXTS, 256))
    (req,) = server.requests
    assert req.path == "/v2/embed"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert req.body["model"] == "embed-v4.0"
    assert req.body["texts"] == [t or " " for t in TEXTS]
    assert req.body["input_type"] == "classification"
    assert req.body["embedding_types"] == ["float"]
    assert req.body["output_dimension"] == 256
    assert "input_type=classification" in emb.model_id and "dimensions=256" in emb.model_id


def test_gemini_request_shape(server: FakeEmbeddingAPI) -> None:
    emb = load_embedder(spec_for("gemini", server, extra="task_type=classification"))
    np.testing.assert_array_equal(emb.embed(TEXTS), expected(TEXTS, 8))
    (req,) = server.requests
    assert req.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == API_KEY
    first = req.body["requests"][0]
    assert first["model"] == "models/gemini-embedding-001"
    assert first["content"]["parts"] == [{"text": TEXTS[0]}]
    assert first["outputDimensionality"] == 8
    assert first["taskType"] == "CLASSIFICATION"
    assert emb.model_id.startswith("gemini:gemini-embedding-001?") and "task_type=CLASSIFICATION" in emb.model_id


# --- batching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "n", "sizes"),
    [
        ("openai", 2049, [2048, 1]),
        ("cohere", 200, [96, 96, 8]),
        ("gemini", 250, [100, 100, 50]),
    ],
)
def test_batches_to_documented_limits_and_keeps_order(
    server: FakeEmbeddingAPI, api: str, n: int, sizes: list[int]
) -> None:
    texts = [f"sentence {i}" for i in range(n)]
    out = load_embedder(spec_for(api, server, dim=4)).embed(texts)
    assert server.sizes() == sizes
    np.testing.assert_array_equal(out, expected(texts, 4))


def test_caller_batch_size_can_only_lower_the_cap(server: FakeEmbeddingAPI) -> None:
    emb = load_embedder(spec_for("cohere", server, dim=4))
    emb.embed([f"t{i}" for i in range(10)], batch_size=4)
    emb.embed([f"u{i}" for i in range(100)], batch_size=500)
    assert server.sizes() == [4, 4, 2, 96, 4]


def test_openai_splits_by_token_budget(server: FakeEmbeddingAPI) -> None:
    texts = [str(i) * 100_000 for i in range(5)]  # 100k bytes each: the 300k-token cap allows 3 per request
    out = load_embedder(spec_for("openai", server, dim=4)).embed(texts)
    assert server.sizes() == [3, 2]
    np.testing.assert_array_equal(out, expected(texts, 4))


# --- retries and errors -------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_failure_then_success(server: FakeEmbeddingAPI, api: str, status: int) -> None:
    server.fail_next(status, times=2)
    out = load_embedder(spec_for(api, server)).embed(TEXTS[:2])
    assert len(server.requests) == 3
    np.testing.assert_array_equal(out, expected(TEXTS[:2], 8))


@pytest.mark.parametrize("api", APIS)
def test_429_honours_retry_after(server: FakeEmbeddingAPI, api: str) -> None:
    server.fail_next(429, headers={"Retry-After": "1"})
    start = time.monotonic()
    load_embedder(spec_for(api, server)).embed(TEXTS[:1])
    elapsed = time.monotonic() - start
    assert len(server.requests) == 2
    assert 1.0 <= elapsed < 5.0  # waited what the server asked, not the 0.01 s backoff


@pytest.mark.parametrize("api", APIS)
def test_bad_key_gives_clear_auth_error_without_retrying(
    server: FakeEmbeddingAPI, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in KEY_ENVS:
        monkeypatch.setenv(name, "wrong-key")
    emb = load_embedder(spec_for(api, server, extra="max_attempts=4"))
    with pytest.raises(EmbedderAuthError, match="authentication failed.*HTTP 401") as info:
        emb.embed(TEXTS[:1])
    assert info.value.status == 401
    assert {"openai": "OPENAI_API_KEY", "cohere": "COHERE_API_KEY", "gemini": "GEMINI_API_KEY"}[api] in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("api", APIS)
def test_403_is_an_auth_error(server: FakeEmbeddingAPI, api: str) -> None:
    server.fail_next(403)
    with pytest.raises(EmbedderAuthError, match="HTTP 403"):
        load_embedder(spec_for(api, server)).embed(TEXTS[:1])
    assert len(server.requests) == 1


@pytest.mark.parametrize("api", APIS)
def test_gives_up_after_max_attempts(server: FakeEmbeddingAPI, api: str) -> None:
    server.fail_next(500, times=10)
    with pytest.raises(EmbedderRequestError, match="after 3 attempts.*HTTP 500"):
        load_embedder(spec_for(api, server, extra="max_attempts=3")).embed(TEXTS[:1])
    assert len(server.requests) == 3


@pytest.mark.parametrize("api", APIS)
def test_client_error_is_not_retried(server: FakeEmbeddingAPI, api: str) -> None:
    server.fail_next(400)
    with pytest.raises(EmbedderRequestError, match="rejected.*HTTP 400"):
        load_embedder(spec_for(api, server)).embed(TEXTS[:1])
    assert len(server.requests) == 1


@pytest.mark.parametrize("api", APIS)
def test_connection_errors_are_retried_then_reported(api: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EmbedderRequestError, match="after 2 attempts"):
        load_embedder(spec_for(api, f"http://127.0.0.1:{port}", extra="max_attempts=2")).embed(TEXTS[:1])


@pytest.mark.parametrize(
    ("api", "envs"),
    [
        ("openai", ["OPENAI_API_KEY"]),
        ("cohere", ["COHERE_API_KEY", "CO_API_KEY"]),
        ("gemini", ["GEMINI_API_KEY", "GOOGLE_API_KEY"]),
    ],
)
def test_missing_key_is_a_clear_value_error(
    server: FakeEmbeddingAPI, api: str, envs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentialsError, match=" or ".join(envs)):
        load_embedder(spec_for(api, server, extra="max_attempts=1"))
    assert isinstance(MissingCredentialsError("x"), ValueError)
    assert server.requests == []


@pytest.mark.parametrize(("api", "key_env"), [("cohere", "CO_API_KEY"), ("gemini", "GOOGLE_API_KEY")])
def test_alternative_key_variables(
    server: FakeEmbeddingAPI, api: str, key_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(key_env, API_KEY)
    load_embedder(spec_for(api, server, extra="max_attempts=1")).embed(TEXTS[:1])
    assert len(server.requests) == 1


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "env", "suffix"),
    [
        ("openai", "OPENAI_BASE_URL", "/v1"),
        ("cohere", "COHERE_BASE_URL", ""),
        ("gemini", "GEMINI_BASE_URL", ""),
    ],
)
def test_base_url_from_environment(
    server: FakeEmbeddingAPI, monkeypatch: pytest.MonkeyPatch, api: str, env: str, suffix: str
) -> None:
    monkeypatch.setenv(env, server.url + suffix)
    model = {"openai": "text-embedding-3-small", "cohere": "embed-v4.0", "gemini": "gemini-embedding-001"}[api]
    # A spec no other test uses, so the registry's instance cache cannot hand back an older client.
    emb = load_embedder(f"{api}:{model}?dimensions=3&{FAST}&max_attempts=1")
    np.testing.assert_array_equal(emb.embed(TEXTS[:2]), expected(TEXTS[:2], 3))
    assert len(server.requests) == 1
    assert "base_url=" in emb.model_id  # a non-default server is part of the model's identity


@pytest.mark.parametrize("api", APIS)
def test_unknown_model_size_is_probed_once(server: FakeEmbeddingAPI, api: str) -> None:
    url = f"{server.url}/v1" if api == "openai" else server.url
    emb = load_embedder(f"{api}:my-local-model?base_url={url}&{FAST}")
    assert emb.dim == DEFAULT_DIM
    assert len(server.requests) == 1
    assert emb.embed(TEXTS[:2]).shape == (2, DEFAULT_DIM)
    assert emb.model_id.startswith(f"{api}:my-local-model?")


def test_known_model_size_needs_no_request(server: FakeEmbeddingAPI) -> None:
    emb = load_embedder(f"openai:text-embedding-3-large?base_url={server.url}/v1&{FAST}")
    assert emb.dim == 3072 and server.requests == []


@pytest.mark.parametrize(
    "spec",
    [
        "openai:text-embedding-3-small?dims=8",
        "openai:text-embedding-3-small?dimensions=0",
        "openai:text-embedding-ada-002?dimensions=256",
        "cohere:embed-v4.0?input_type=sideways",
        "gemini:gemini-embedding-001?max_attempts=x",
        "openai:text-embedding-3-small?timeout=-1",
    ],
)
def test_bad_cloud_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        load_embedder(spec)


def test_cache_avoids_repeat_requests(server: FakeEmbeddingAPI, tmp_path: Any) -> None:
    emb = load_embedder(spec_for("gemini", server), cache_dir=tmp_path)
    assert isinstance(emb, CachedEmbedder)
    first = emb.embed(TEXTS)
    again = emb.embed(TEXTS)
    assert len(server.requests) == 1
    np.testing.assert_array_equal(first, again)


def test_progress_bar_only_when_asked(server: FakeEmbeddingAPI, capsys: pytest.CaptureFixture[str]) -> None:
    emb = load_embedder(spec_for("cohere", server, dim=4))
    emb.embed([f"p{i}" for i in range(200)])
    assert capsys.readouterr().err == ""
    emb.embed([f"q{i}" for i in range(200)], progress=True)
    err = capsys.readouterr().err
    assert "200/200" in err and emb.model_id in err
