"""Request metrics: counted by route template (never the raw path), status and method, timed, with
unmatched paths under one label."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from helix_web.metrics import HttpMetrics, MetricsMiddleware


def make_app() -> tuple[FastAPI, HttpMetrics]:
    app = FastAPI()
    metrics = HttpMetrics("test")

    @app.get("/v1/keys/{key_id}")
    def get_key(key_id: str) -> dict[str, str]:
        if key_id == "missing":
            raise HTTPException(404)
        return {"key_id": key_id}

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app, metrics


def samples(metrics: HttpMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.response().body.decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_requests_are_counted_by_template_and_status() -> None:
    app, metrics = make_app()
    with TestClient(app) as client:
        assert client.get("/v1/keys/k_secret1").status_code == 200
        assert client.get("/v1/keys/k_secret2").status_code == 200
        assert client.get("/v1/keys/missing").status_code == 404
        assert client.get("/no/such/path").status_code == 404
    text = metrics.response().body.decode()
    assert "k_secret1" not in text and "k_secret2" not in text  # ids never become labels
    counts = samples(metrics, "helix_http_requests_total")
    ok = (("method", "GET"), ("route", "/v1/keys/{key_id}"), ("service", "test"), ("status", "200"))
    assert counts[ok] == 2
    assert counts[(("method", "GET"), ("route", "/v1/keys/{key_id}"), ("service", "test"), ("status", "404"))] == 1
    assert counts[(("method", "GET"), ("route", "<unrouted>"), ("service", "test"), ("status", "404"))] == 1
    timings = samples(metrics, "helix_http_request_duration_seconds_count")
    assert timings[(("method", "GET"), ("route", "/v1/keys/{key_id}"), ("service", "test"))] == 3
    assert samples(metrics, "helix_http_requests_in_flight")[(("service", "test"),)] == 0
