"""Start the two daemons as real subprocesses and wait until they answer over TLS."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when the demo process dies, however it dies."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, name: str, module: str, env: dict[str, str], port: int, ca: Path, log_path: Path) -> None:
        self.name = name
        self.url = f"https://127.0.0.1:{port}"
        self.ca = ca
        self.log_path = log_path
        full_env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **env)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", module, "serve"], env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def wait_ready(self, deadline_s: float = 180.0) -> None:
        end = time.monotonic() + deadline_s
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca)), timeout=2.0) as http:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not become ready in {deadline_s} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
