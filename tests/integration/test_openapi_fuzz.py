"""A bounded schemathesis run over both daemons' OpenAPI documents, against real servers: every answer
must be a declared status with the declared schema and media type, and none a server error.

Each operation gets a few generated requests (seeded, so a run is repeatable), with the credentials the
operation needs (the admin token for admin routes and metrics, the tenant's API key elsewhere, the
agent's own API); the provider is one of its own, so fuzzed admin calls touch nobody else's state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from helix_it_helpers import create_tenant, https_client
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 5


@schemathesis.serializer("application/vnd.helix.frame", "application/x-ndjson")
def _raw_bytes(_ctx: Any, value: Any) -> bytes:
    """Binary bodies (frames, JSONL uploads) go on the wire as generated: arbitrary bytes."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(base_url: str, ca: str, headers_for: Callable[[str], dict[str, str]]) -> tuple[int, list[str]]:
    """(requests sent, failures) of a bounded run over every operation of the daemon's document."""
    with https_client(base_url, ca) as http:
        raw = http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal sent
            response = case.call(base_url=base_url, headers=headers_for(case.path), verify=ca, timeout=120)
            sent += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # noqa: BLE001 - every kind of check failure is collected and reported
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {str(exc)[:400]}")

        run()
    return sent, failures


def test_provider_answers_match_its_openapi_document(
    provider_service_factory: Any, admin_headers: dict[str, str]
) -> None:
    svc = provider_service_factory("provider-fuzz").start()
    with https_client(svc.url, str(svc.ca_cert), headers=admin_headers) as admin:
        _, api_key = create_tenant(admin, "fuzz")

    def headers_for(path: str) -> dict[str, str]:
        admin_route = path.startswith("/v1/admin") or path == "/metrics"
        return admin_headers if admin_route else {"Authorization": f"Bearer {api_key}"}

    sent, failures = fuzz(svc.url, str(svc.ca_cert), headers_for)
    assert sent >= 100, sent
    assert not failures, "\n".join(failures[:15])
    svc.stop()


def test_agent_answers_match_its_openapi_document(client_agent_factory: Any) -> None:
    agent = client_agent_factory("agent-fuzz")
    sent, failures = fuzz(agent.url, str(agent.service.ca_cert), lambda path: {})
    assert sent >= 20, sent
    assert not failures, "\n".join(failures[:15])
    agent.close()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
