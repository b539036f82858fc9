"""The agent's retries against a real HTTP server on loopback that answers from a script: repeatable
calls are retried through 502/503/504 and refused connections, other calls are not, and a provider
that stays away is one clear ProviderUnreachable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client_agent.provider_client import ProviderClient, ProviderError, ProviderUnreachable
from helix_web.launcher import free_port


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next (status, body) of `script`, the last one repeated."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[tuple[int, dict[str, str]]] = []
        self.seen: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.seen.append(f"{self.command} {self.path}")
        script = self.server.script
        status, body = script.pop(0) if len(script) > 1 else script[0]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def client(srv: Scripted, retry_seconds: float = 5.0) -> ProviderClient:
    return ProviderClient(f"http://127.0.0.1:{srv.server_address[1]}", None, timeout=10, retry_seconds=retry_seconds)


AWAY = (503, {"error": "not_ready", "detail": "restarting"})


def test_a_get_is_retried_through_502_503_504(server: Scripted) -> None:
    server.script = [(502, {}), AWAY, (504, {}), (200, {"status": "ok"})]
    with client(server) as pc:
        assert pc._send("GET", "/readyz").json() == {"status": "ok"}
    assert len(server.seen) == 4


def test_a_post_that_is_not_idempotent_is_sent_once(server: Scripted) -> None:
    server.script = [AWAY, (201, {})]
    with client(server) as pc, pytest.raises(ProviderUnreachable) as err:
        pc._send("POST", "/v1/alignments", json={})
    assert server.seen == ["POST /v1/alignments"]
    assert err.value.code == "provider_unavailable" and "503" in err.value.detail


def test_a_repeated_delete_that_finds_nothing_succeeded_earlier(server: Scripted) -> None:
    server.script = [AWAY, (404, {"error": "unknown_key", "detail": "no key"})]
    with client(server) as pc:
        pc.revoke_key("k_1")
    assert len(server.seen) == 2


def test_a_first_404_is_still_an_error(server: Scripted) -> None:
    server.script = [(404, {"error": "unknown_key", "detail": "no key"})]
    with client(server) as pc, pytest.raises(ProviderError) as err:
        pc.revoke_key("k_1")
    assert err.value.code == "unknown_key"


def test_a_provider_that_stays_away_is_unavailable_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ProviderClient(url, None, timeout=5, retry_seconds=0.5) as pc, pytest.raises(ProviderUnreachable) as err:
        pc.info()
    assert err.value.status == 503 and err.value.code == "provider_unavailable"
    assert url in err.value.detail and err.value.retry_seconds == 1
