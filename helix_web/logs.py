"""Structured logs: one JSON object per line, every line with the request id it belongs to.

Why: operators feed daemon logs to a collector, which needs fields, not prose; a request is followed from
the agent's log into the provider's by its id; and an outage must not bury the log in tracebacks. So:

* every record (the daemons' own and uvicorn's) is one line: `ts`, `level`, `logger`, `message`,
  `request_id` (`-` outside a request), plus the record's fields;
* an access record (one per request, from uvicorn) carries `method`, `route` (the route template,
  never the raw path: `helix_web.access_log`), `status` and `client`;
* a traceback appears only for an unexpected failure (a record with exception info), folded into the
  same line as the `traceback` field; expected refusals (4xx, a provider that is away) are logged, if
  at all, as one plain line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: Attributes every LogRecord has; anything else on a record is an extra field worth showing.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, route, _version, status = args
            out.update(message=f"{method} {route} {status}", method=method, route=route, status=int(str(status)))
            out["client"] = client
        else:
            out["message"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = f"{type(exc).__name__}: {exc}"
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)
