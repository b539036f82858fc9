"""Provider replicas behind a real HAProxy, for the replica tests and the replica benchmark.

Several provider daemons share one database (its URL comes from one place, so the same tests run on
another database) and one data directory; HAProxy (`provider_server.balancer`) terminates TLS on a
loopback port and balances every request over them. The balancer's log names the replica that
served each request and how often HAProxy retried it; its stats socket says which replicas it
considers up. Nothing is mocked: the daemons are `python -m provider_server.cli serve`, as an
operator would run them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from helix_pki import DemoPKI
from helix_web import launcher
from helix_web.launcher import Daemon, free_port
from provider_server.balancer import Backend, HealthCheck, haproxy_config

REPO_ROOT = Path(__file__).resolve().parent.parent

#: One line of the balancer's log (`provider_server.balancer`'s log-format).
LOG_LINE = re.compile(
    r"^(?P<client>\S+) \[(?P<at>[^\]]+)\] (?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
    r"(?P<timers>\S+) (?P<status>-?\d+) (?P<bytes>\d+) (?P<term>\S+) "
    r"(?P<ac>\d+)/(?P<fc>\d+)/(?P<bc>\d+)/(?P<sc>\d+)/(?P<retries>\+?\d+) (?P<queues>\S+) "
    r"(?P<method>\S+) (?P<path>\S+)"
)


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)


@dataclass(frozen=True)
class BalancedRequest:
    """What the balancer logged about one request."""

    server: str  # the replica that answered, or "<NOSRV>"
    status: int
    retries: int  # connection attempts HAProxy repeated (a "+" prefix: redispatched to another replica)
    redispatched: bool
    method: str
    path: str  # ids masked
    termination: str


def parse_balancer_log(text: str) -> list[BalancedRequest]:
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m is None:
            continue
        retries = m["retries"]
        out.append(
            BalancedRequest(
                server=m["server"],
                status=int(m["status"]),
                retries=int(retries.lstrip("+")),
                redispatched=retries.startswith("+"),
                method=m["method"],
                path=m["path"],
                termination=m["term"],
            )
        )
    return out


class Balancer:
    """A real HAProxy on a loopback port in front of `backends`, logging to a file."""

    def __init__(
        self, pki: DemoPKI, backends: list[Backend], workdir: Path, *, health: HealthCheck, port: int | None = None
    ) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy; `make install` does)")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        certificate = workdir / "provider-with-key.pem"
        certificate.write_bytes(pki.provider.cert.read_bytes() + pki.provider.key.read_bytes())
        certificate.chmod(0o600)
        self.stats_socket = workdir / "haproxy.sock"
        self.config_path = workdir / "haproxy.cfg"
        self.config_path.write_text(
            haproxy_config(
                bind=f"127.0.0.1:{self.port}",
                certificate=certificate,
                ca_file=pki.ca.cert,
                backends=backends,
                verify_host="localhost",
                health=health,
                stats_socket=self.stats_socket,
            )
        )
        self.ca = pki.ca.cert
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Balancer:
        check = subprocess.run([self.binary, "-c", "-f", str(self.config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}\n{check.stderr}")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_until(self, condition: Callable[[], bool], *, deadline_s: float, what: str) -> None:
        deadline = time.monotonic() + deadline_s
        while not condition():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited ({self.proc.returncode}):\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not so after {deadline_s:.0f} s; servers: {self.server_states()}")
            time.sleep(0.1)  # polling the balancer's own view, with a deadline

    def wait_servers_up(self, names: set[str], *, deadline_s: float = 60.0) -> None:
        self.wait_until(
            lambda: {n for n, s in self.server_states().items() if s == "UP"} >= names,
            deadline_s=deadline_s,
            what=f"replicas {sorted(names)} up at the balancer",
        )

    def server_states(self) -> dict[str, str]:
        """Each replica's state as the balancer sees it (UP, DOWN, ...), from `show stat`."""
        try:
            text = self._command("show stat")
        except OSError:
            return {}
        lines = text.lstrip("# ").splitlines()
        if not lines:
            return {}
        header = lines[0].split(",")
        name, status = header.index("svname"), header.index("status")
        states = {}
        for line in lines[1:]:
            cols = line.split(",")
            if len(cols) > status and cols[0] == "replicas" and cols[name] not in ("BACKEND", "FRONTEND"):
                states[cols[name]] = cols[status].split()[0]
        return states

    def backend_counters(self) -> dict[str, int]:
        """The backend's retries (wretr), redispatches (wredis) and 5xx answers, from `show stat`."""
        lines = self._command("show stat").lstrip("# ").splitlines()
        header = lines[0].split(",")
        for line in lines[1:]:
            cols = line.split(",")
            if cols[0] == "replicas" and cols[1] == "BACKEND":
                return {k: int(cols[header.index(k)] or 0) for k in ("wretr", "wredis", "hrsp_5xx")}
        return {}

    def _command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats_socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self) -> list[BalancedRequest]:
        return parse_balancer_log(self.log_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class ReplicaSet:
    """Provider replicas sharing one database and one data directory, each on its own port."""

    pki: DemoPKI
    datasets: Path
    base: Path
    database_url: str
    count: int
    admin_token: str
    settings: Mapping[str, str] = field(default_factory=dict)
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base / "shared-data"

    def names(self) -> list[str]:
        return [f"r{i + 1}" for i in range(self.count)]

    def backends(self, names: list[str] | None = None) -> list[Backend]:
        return [Backend(d.name, f"127.0.0.1:{d.port}") for d in self.daemons if names is None or d.name in names]

    def make(self) -> ReplicaSet:
        for name in self.names():
            port = free_port()
            env = launcher.provider_env(
                pki=self.pki,
                port=port,
                data_dir=self.data_dir,
                datasets_dir=self.datasets,
                admin_token=self.admin_token,
                env_file=str(self.base / "no-such-provider.env"),
                database_url=self.database_url,
                replica_id=name,
                **self.settings,
            )
            log_dir = self.base / name
            self.daemons.append(
                Daemon(
                    name,
                    "provider_server.cli",
                    env,
                    ca_cert=self.pki.ca.cert,
                    port=port,
                    log_dir=log_dir,
                    cwd=REPO_ROOT,
                    pythonpath=REPO_ROOT,
                )
            )
        return self

    def start(self, names: list[str] | None = None, deadline_s: float = 180.0) -> ReplicaSet:
        """Start these replicas (default: all) at once (their start-ups overlap), then wait for each."""
        chosen = [d for d in self.daemons if names is None or d.name in names]
        for d in chosen:
            d.spawn()
        for d in chosen:
            d.wait_ready(deadline_s)
        return self

    def running(self) -> list[Daemon]:
        return [d for d in self.daemons if d.running]

    def by_name(self, name: str) -> Daemon:
        return next(d for d in self.daemons if d.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL the replica and its HE workers (its whole process group), as a lost host would."""
        d = self.by_name(name)
        assert d.proc is not None and d.proc.poll() is None, f"{name} is not running"
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait(30)
        d.stop()  # reaped: the launcher now knows it is stopped (and signals nothing again)

    def stop(self) -> None:
        for d in self.daemons:
            d.stop()

    def log_tails(self) -> str:
        return "\n".join(f"--- {d.name}\n{d.log_tail(30)}" for d in self.daemons)


def https_client(url: str, ca: Path, **kwargs: object) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        verify=ssl.create_default_context(cafile=str(ca)),
        timeout=300.0,
        **kwargs,  # type: ignore[arg-type]
    )
