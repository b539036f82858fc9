"""Start a HELIX daemon as a child process and know when it is ready.

One launcher for everything that runs the daemons from Python (the demo, the test fixtures, the
benchmarks): `python -m <module> serve`, configured only through its environment as an operator would,
on a loopback port, its output in a log file, ready once `GET /healthz` answers 200 over TLS trusting
only the given CA. The child gets its own process group, so `stop` also reaches the HE worker processes
a provider spawns.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from helix_pki import DemoPKI

#: Settings the parent may have in its own environment that must not leak into a daemon it configures.
DAEMON_ENV_PREFIXES = ("HELIX_PROVIDER_", "HELIX_CLIENT_")


class DaemonError(RuntimeError):
    """A daemon exited while starting, or did not become ready in time; the message has its log tail."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, however it dies (Linux)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def daemon_environ(
    env: Mapping[str, str], *, pythonpath: Path | None = None, inherit_settings: bool = False
) -> dict[str, str]:
    """The parent's environment (without its daemon settings unless `inherit_settings`), plus offline
    model loading, unbuffered output and tracebacks on crashes, plus `env` (which wins)."""
    out = {k: v for k, v in os.environ.items() if inherit_settings or not k.startswith(DAEMON_ENV_PREFIXES)}
    out.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    if pythonpath is not None:
        out["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    out.update(env)
    return out


def provider_env(
    *, pki: DemoPKI, port: int, data_dir: Path, datasets_dir: Path, admin_token: str, **settings: str
) -> dict[str, str]:
    """A provider's settings on loopback with the local CA's certificates; `settings` are further
    HELIX_PROVIDER_* values (name without the prefix, e.g. WORKERS="2")."""
    env = {
        "HELIX_PROVIDER_HOST": "127.0.0.1",
        "HELIX_PROVIDER_PORT": str(port),
        "HELIX_PROVIDER_DATA_DIR": str(data_dir),
        "HELIX_PROVIDER_DATASETS_DIR": str(datasets_dir),
        "HELIX_PROVIDER_TLS_CERT": str(pki.provider.cert),
        "HELIX_PROVIDER_TLS_KEY": str(pki.provider.key),
        "HELIX_PROVIDER_ADMIN_TOKEN": admin_token,
    }
    env.update({f"HELIX_PROVIDER_{k.upper()}": v for k, v in settings.items()})
    return env


def client_env(
    *, pki: DemoPKI, port: int, data_dir: Path, provider_url: str, embedder: str, client_name: str, **settings: str
) -> dict[str, str]:
    """A client agent's settings on loopback, trusting the local CA for the provider; `settings` are further
    HELIX_CLIENT_* values (name without the prefix)."""
    env = {
        "HELIX_CLIENT_HOST": "127.0.0.1",
        "HELIX_CLIENT_PORT": str(port),
        "HELIX_CLIENT_DATA_DIR": str(data_dir),
        "HELIX_CLIENT_TLS_CERT": str(pki.client.cert),
        "HELIX_CLIENT_TLS_KEY": str(pki.client.key),
        "HELIX_CLIENT_PROVIDER_URL": provider_url,
        "HELIX_CLIENT_PROVIDER_CA_CERT": str(pki.ca.cert),
        "HELIX_CLIENT_EMBEDDER": embedder,
        "HELIX_CLIENT_CLIENT_NAME": client_name,
    }
    env.update({f"HELIX_CLIENT_{k.upper()}": v for k, v in settings.items()})
    return env


class Daemon:
    """One daemon subprocess on a loopback port. `start` may be called again after `stop` (a restart);
    each start writes its own log file, so the previous run's log stays readable."""

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        *,
        ca_cert: Path,
        port: int,
        log_dir: Path,
        cwd: Path | None = None,
        pythonpath: Path | None = None,
        die_with_parent: bool = False,
        inherit_settings: bool = False,
    ) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        self.ca_cert = ca_cert
        self.port = port
        self.log_dir = log_dir
        self.cwd = cwd
        self.pythonpath = pythonpath
        self.die_with_parent = die_with_parent
        self.inherit_settings = inherit_settings
        self.log_path: Path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopped: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log written>"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, deadline_s: float = 120.0) -> Daemon:
        """Spawn the daemon and wait until it answers; DaemonError (daemon stopped) if it does not."""
        self.spawn()
        self.wait_ready(deadline_s)
        return self

    def spawn(self) -> Daemon:
        """Spawn the daemon without waiting (`wait_ready` later lets other work overlap its start-up)."""
        if self.running:
            raise DaemonError(f"{self.name} is already running")
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        preexec = _die_with_parent if self.die_with_parent and sys.platform.startswith("linux") else None
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve"],
                cwd=self.cwd,
                env=daemon_environ(self.env, pythonpath=self.pythonpath, inherit_settings=self.inherit_settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=preexec,
            )
        return self

    def wait_ready(self, deadline_s: float) -> None:
        """Poll `/healthz` over TLS until 200, the process exits, or the deadline passes."""
        assert self.proc is not None
        deadline = time.monotonic() + deadline_s
        last_error = "no attempt yet"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_cert)), timeout=5.0) as http:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    raise DaemonError(
                        f"{self.name} exited with code {rc} while starting; log {self.log_path}:\n{self.log_tail(200)}"
                    )
                try:
                    resp = http.get(f"{self.url}/healthz")
                    if resp.status_code == 200:
                        return
                    last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    self.stop()
                    raise DaemonError(
                        f"{self.name} not ready after {deadline_s:.0f} s (last: {last_error}); "
                        f"log {self.log_path}:\n{self.log_tail(200)}"
                    )
                time.sleep(0.2)  # the readiness poll's interval, not a synchronisation sleep

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful uvicorn shutdown), wait, then SIGKILL; then SIGKILL whatever is left of
        the daemon's process group (the HE pool's spawned workers)."""
        proc = self.proc
        if proc is None:
            return None
        if self._stopped is proc:  # already stopped and reaped: never signal a stale group id again
            return proc.returncode
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        try:  # the group id is the pid of the process we started
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._stopped = proc
        return proc.returncode
