"""Run a FastAPI app under uvicorn with TLS when certificates are configured."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

LogFormat = Literal["json", "text"]


def log_config(log_format: LogFormat = "json") -> dict[str, Any]:
    """Uvicorn's logging, extended to the daemons' own loggers (the root logger), with the request id
    on every line (`-` outside a request), so one request can be followed from the agent's log into the
    provider's, and the route template in place of the raw path (`helix_web.access_log`: no ids in
    logs). `json`: one JSON object per line (`helix_web.logs`); `text`: uvicorn's lines with
    `request_id=` appended."""
    config = copy.deepcopy(LOGGING_CONFIG)
    filters = config.setdefault("filters", {})
    filters["request_id"] = {"()": "helix_web.request_id.RequestIdLogFilter"}
    filters["route_template"] = {"()": "helix_web.access_log.RouteTemplateLogFilter"}
    config["handlers"]["access"].setdefault("filters", []).extend(["request_id", "route_template"])
    config["handlers"]["default"].setdefault("filters", []).append("request_id")
    if log_format == "json":
        config["formatters"]["json"] = {"()": "helix_web.logs.JsonFormatter"}
        config["handlers"]["access"]["formatter"] = "json"
        config["handlers"]["default"]["formatter"] = "json"
    else:
        config["formatters"]["access"]["fmt"] += " request_id=%(request_id)s"
        config["formatters"]["default"]["fmt"] += " request_id=%(request_id)s"
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config


def quiet_libraries() -> None:
    """A daemon's log is its log records only: no progress bars (tqdm, as the embedding libraries draw
    them while loading weights, honours TQDM_DISABLE) and Python warnings as log records."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.captureWarnings(True)


def serve(
    app: FastAPI,
    host: str,
    port: int,
    cert: Path | None,
    key: Path | None,
    log_level: str = "info",
    log_format: LogFormat = "json",
) -> None:
    if (cert is None) != (key is None):
        raise SystemExit("set both the TLS certificate and key, or neither")
    quiet_libraries()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_format),
        ssl_certfile=None if cert is None else str(cert),
        ssl_keyfile=None if key is None else str(key),
    )
