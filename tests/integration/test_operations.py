"""Operations against the real daemons: readiness next to liveness, request ids from the agent's
caller through to the provider's access log, and bounded waits for request bodies that never arrive."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from helix_it_helpers import assert_api_error, https_client

from helix_web.launcher import free_port

BODY_TIMEOUT_S = 2.0
#: How long the raw-socket test waits for the server's answer: the timeout plus generous scheduling slack
#: on a shared machine, far below "forever".
ANSWER_DEADLINE_S = 30.0


def checked(resp: Any, status: int) -> Any:
    assert resp.status_code == status, f"{resp.request.url} -> {resp.status_code}: {resp.text[:500]}"
    return resp.json()


def test_both_daemons_are_ready_when_up(provider: Any, client_agent: Any) -> None:
    assert checked(provider.http.get("/readyz"), 200) == {"status": "ready"}
    assert checked(provider.http.get("/healthz"), 200) == {"status": "ok"}
    assert checked(client_agent.http.get("/readyz"), 200) == {"status": "ready"}


def test_agent_without_provider_is_live_but_not_ready(client_agent_factory: Any) -> None:
    missing = f"https://127.0.0.1:{free_port()}"
    agent = client_agent_factory("agent-no-provider", HELIX_CLIENT_PROVIDER_URL=missing)
    try:
        assert_api_error(agent.http.get("/readyz"), 503, "not_ready", missing, "unreachable")
        assert agent.http.get("/healthz").status_code == 200
    finally:
        agent.close()


def test_request_id_is_echoed_and_reaches_the_provider_log(provider: Any, client_agent_factory: Any) -> None:
    agent = client_agent_factory("agent-request-id")
    try:
        rid = f"it-{uuid.uuid4().hex}"
        resp = agent.http.get("/readyz", headers={"X-Request-ID": rid})
        checked(resp, 200)
        assert resp.headers["x-request-id"] == rid
        # the agent asked the provider's /readyz (its first readiness check) under the same id
        bad = [line for line in provider.service.log_text().splitlines() if not line.startswith("{")]
        assert not bad, bad[:20]
        provider_lines = [json_line(line) for line in provider.service.log_text().splitlines()]
        mine = [line for line in provider_lines if line["request_id"] == rid]
        assert any(line.get("route") == "/readyz" and line.get("status") == 200 for line in mine), mine
        agent_lines = [json_line(line) for line in agent.service.log_text().splitlines()]
        assert any(line["request_id"] == rid and line.get("route") == "/readyz" for line in agent_lines)
    finally:
        agent.close()


def json_line(line: str) -> dict[str, Any]:
    """A daemon log line: one JSON object with a request id (`-` outside a request)."""
    data = json.loads(line)
    assert isinstance(data, dict) and isinstance(data.get("request_id"), str), line
    return data


@pytest.mark.parametrize("bad", [b"", b"has space", b"x" * 129, b"a/b", "\u00fc".encode()])
def test_invalid_request_ids_are_replaced(provider: Any, bad: bytes) -> None:
    resp = provider.http.get("/healthz", headers={b"X-Request-ID": bad})
    assert resp.status_code == 200
    given = resp.headers["x-request-id"]
    assert given.encode() != bad and re.fullmatch(r"[0-9a-f]{32}", given)


def test_request_id_is_created_and_echoed_on_errors(provider: Any) -> None:
    resp = provider.http.get("/v1/heads/no-such-head")
    assert_api_error(resp, 404, "unknown_head")
    assert resp.headers["x-request-id"]
    resp = provider.http.get("/v1/heads/no-such-head", headers={"X-Request-ID": "abc.DEF_1-2"})
    assert resp.status_code == 404 and resp.headers["x-request-id"] == "abc.DEF_1-2"


def _short_body(url: str, ca: str, path: str) -> tuple[bytes, float]:
    """POST announcing 1000 bytes but sending 10, then wait: -> (what the server sent, seconds until
    it answered or closed)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((host, port), timeout=ANSWER_DEADLINE_S) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n".encode()
                + b'{"texts": '
            )
            started = time.monotonic()
            received = b""
            while True:
                try:
                    chunk = tls.recv(65536)
                except TimeoutError:
                    pytest.fail(f"no answer and no close within {ANSWER_DEADLINE_S} s")
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not chunk:
                    break
                received += chunk
            return received, time.monotonic() - started


def test_provider_answers_a_short_body_with_408(provider_service_factory: Any) -> None:
    svc = provider_service_factory(
        "provider-body-timeout",
        HELIX_PROVIDER_BODY_READ_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S),
        HELIX_PROVIDER_WORKERS="1",
    )
    svc.start()
    try:
        received, elapsed = _short_body(svc.url, str(svc.ca_cert), "/v1/alignments")
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"body_read_timeout" in received and b"x-request-id" in received.lower()
        assert elapsed >= BODY_TIMEOUT_S * 0.9
        with https_client(svc.url, str(svc.ca_cert)) as http:  # the daemon still serves
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
    finally:
        svc.stop()


def test_agent_answers_a_short_body_with_408(client_agent_factory: Any) -> None:
    agent = client_agent_factory("agent-body-timeout", HELIX_CLIENT_BODY_READ_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S))
    try:
        received, elapsed = _short_body(agent.url, str(agent.service.ca_cert), "/v1/classify")
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"body_read_timeout" in received and b"x-request-id" in received.lower()
        assert elapsed >= BODY_TIMEOUT_S * 0.9
        assert agent.http.get("/healthz").status_code == 200
    finally:
        agent.close()
