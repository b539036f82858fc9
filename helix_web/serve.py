"""Run a FastAPI app under uvicorn with TLS when certificates are configured."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int, cert: Path | None, key: Path | None, log_level: str = "info") -> None:
    if (cert is None) != (key is None):
        raise SystemExit("set both the TLS certificate and key, or neither")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ssl_certfile=None if cert is None else str(cert),
        ssl_keyfile=None if key is None else str(key),
    )
