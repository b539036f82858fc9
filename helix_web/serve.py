"""Run a FastAPI app under uvicorn with TLS when certificates are configured."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG


def log_config() -> dict[str, Any]:
    """Uvicorn's logging, with the request id at the end of every access line (`request_id=-` when a
    line belongs to no request), so one request can be followed from the agent's log into the provider's,
    and the route template in place of the raw path (`helix_web.access_log`: no ids in logs)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    filters = config.setdefault("filters", {})
    filters["request_id"] = {"()": "helix_web.request_id.RequestIdLogFilter"}
    filters["route_template"] = {"()": "helix_web.access_log.RouteTemplateLogFilter"}
    config["formatters"]["access"]["fmt"] += " request_id=%(request_id)s"
    config["handlers"]["access"].setdefault("filters", []).extend(["request_id", "route_template"])
    return config


def serve(app: FastAPI, host: str, port: int, cert: Path | None, key: Path | None, log_level: str = "info") -> None:
    if (cert is None) != (key is None):
        raise SystemExit("set both the TLS certificate and key, or neither")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(),
        ssl_certfile=None if cert is None else str(cert),
        ssl_keyfile=None if key is None else str(key),
    )
