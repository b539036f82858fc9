"""JSON log lines: one object per record, the request id on every line, access records as fields with the
route template, and a traceback only where a record carries an exception."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from helix_web.logs import JsonFormatter
from helix_web.serve import log_config


def test_access_and_plain_records() -> None:
    fmt = JsonFormatter()
    access = logging.makeLogRecord(
        {
            "name": "uvicorn.access",
            "levelname": "INFO",
            "msg": '%s - "%s %s HTTP/%s" %d',
            "args": ("127.0.0.1:5000", "GET", "/v1/keys/{key_id}", "1.1", 404),
            "request_id": "abc123",
        }
    )
    line = fmt.format(access)
    assert "\n" not in line
    data = json.loads(line)
    assert data["route"] == "/v1/keys/{key_id}" and data["status"] == 404 and data["method"] == "GET"
    assert data["request_id"] == "abc123" and data["level"] == "info" and data["message"] == "GET /v1/keys/{key_id} 404"

    plain = logging.makeLogRecord(
        {"name": "provider_server.gc", "levelname": "WARNING", "msg": "removed %d", "args": (3,)}
    )
    data = json.loads(fmt.format(plain))
    assert data["message"] == "removed 3" and data["request_id"] == "-" and "traceback" not in data


def test_an_exception_is_one_line_with_its_traceback() -> None:
    fmt = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.makeLogRecord({"name": "x", "levelname": "ERROR", "msg": "failed", "exc_info": sys.exc_info()})
    line = fmt.format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["error"] == "RuntimeError: boom" and "Traceback" in data["traceback"]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_logging_config_is_valid_and_covers_the_daemons_loggers(log_format: str) -> None:
    config = log_config(log_format)  # type: ignore[arg-type]
    assert config["root"]["handlers"] == ["default"]
    assert "request_id" in config["handlers"]["default"]["filters"]
    logging.config.dictConfig(config)  # raises on a broken config
