"""Shared fixtures for the HELIX test-suite: a throw-away PKI, the datasets folder, and real
provider / client-agent daemons run as subprocesses (`python -m ... serve`), configured only through
their HELIX_PROVIDER_* / HELIX_CLIENT_* environment variables, exactly as an operator would.

Nothing here mocks or patches product code. Readiness is established by polling `/healthz` over
HTTPS (trusting only the test CA) with a bounded deadline; a daemon that dies while starting fails
the test with its captured log. Every daemon writes its log to a file in a pytest tmp dir, and the
tail of every daemon log is attached to the report of a failing test.
"""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helix_pki import DemoPKI, ensure_demo_pki

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_DEADLINE_S = 120.0
ADMIN_TOKEN = "pytest-admin-token-3f9c2a"
MiB = 1024 * 1024

#: Every daemon started in this session, so a failing test's report can show their logs.
_SERVICES: list["ServiceProcess"] = []


# --------------------------------------------------------------------------- daemons


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_environ() -> dict[str, str]:
    """os.environ without HELIX_PROVIDER_* / HELIX_CLIENT_* (the test decides every setting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HELIX_PROVIDER_", "HELIX_CLIENT_"))}


class ServiceProcess:
    """One daemon subprocess (`python -m <module> serve`) on a loopback port, logging to a file."""

    def __init__(self, name: str, module: str, env: Mapping[str, str], *, ca_cert: Path, port: int,
                 log_dir: Path) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        self.ca_cert = ca_cert
        self.port = port
        self.log_dir = log_dir
        self.log_path: Path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopped: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log written>"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, deadline_s: float = READY_DEADLINE_S) -> "ServiceProcess":
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is already running"
        self.starts += 1
        # One log file per start, so a restart keeps the previous run's log readable.
        self.log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        env = _clean_environ()
        env.update(self.env)
        env["HF_HUB_OFFLINE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"  # a crashing daemon or HE worker leaves a traceback in the log
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        with self.log_path.open("wb") as log:
            # Own session: stop() can reach the HE worker processes the daemon spawns.
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, "serve"], cwd=REPO_ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        if self not in _SERVICES:
            _SERVICES.append(self)
        self.wait_ready(deadline_s)
        return self

    def wait_ready(self, deadline_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + deadline_s
        last_error = "no attempt yet"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_cert)), timeout=5.0) as http:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    pytest.fail(f"{self.name} exited with code {rc} while starting; log {self.log_path}:\n{self.log_text()}",
                                pytrace=False)
                try:
                    resp = http.get(f"{self.url}/healthz")
                    if resp.status_code == 200:
                        return
                    last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{self.name} not ready after {deadline_s:.0f} s (last: {last_error}); "
                                f"log {self.log_path}:\n{self.log_tail(200)}", pytrace=False)
                time.sleep(0.2)  # polling interval of the readiness loop, not a synchronisation sleep

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful uvicorn shutdown), wait, then SIGKILL; also reap leftover workers of
        the daemon's own process group (the HE pool's spawned children)."""
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

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.failed and _SERVICES:
        for svc in _SERVICES:
            rep.sections.append((f"daemon log tail: {svc.name} ({svc.log_path})", svc.log_tail()))


# --------------------------------------------------------------------------- basic fixtures


@pytest.fixture(scope="session")
def keys() -> Any:
    """A client key pair for the default parameter set (in-process circuit tests)."""
    from helix_he.keys import ClientKeys

    return ClientKeys.generate("ckks-n8192-q200")


@pytest.fixture(scope="session")
def rr(keys: Any) -> Any:
    """What the provider builds from the client's registered public key: its re-randomiser."""
    import tenseal.sealapi as seal

    from helix_he.keys import Rerandomizer

    pk = seal.PublicKey()
    seal.KeyGenerator(keys.he.context, keys.secret_key).create_public_key(pk)
    return Rerandomizer(keys.he, pk)



@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPKI:
    return ensure_demo_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    """The Authorization header every test provider accepts on /v1/admin."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    env = os.environ.get("HELIX_DATASETS")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "datasets"
    if not (path / "sst2" / "train.jsonl").is_file() or not (path / "wikipedia" / "passages.jsonl").is_file():
        pytest.fail(f"datasets not found at {path} (need sst2/ and wikipedia/; set HELIX_DATASETS)", pytrace=False)
    return path


def provider_env(pki: DemoPKI, data_dir: Path, datasets: Path, port: int, **overrides: str) -> dict[str, str]:
    env = {
        "HELIX_PROVIDER_ENV_FILE": str(data_dir.parent / "no-such-provider.env"),
        "HELIX_PROVIDER_HOST": "127.0.0.1",
        "HELIX_PROVIDER_PORT": str(port),
        "HELIX_PROVIDER_DATA_DIR": str(data_dir),
        "HELIX_PROVIDER_DATASETS_DIR": str(datasets),
        "HELIX_PROVIDER_TLS_CERT": str(pki.provider.cert),
        "HELIX_PROVIDER_TLS_KEY": str(pki.provider.key),
        "HELIX_PROVIDER_ADMIN_TOKEN": ADMIN_TOKEN,
        "HELIX_PROVIDER_WORKERS": "2",
        "HELIX_PROVIDER_MAX_REQUEST_BYTES": str(32 * MiB),
        "HELIX_PROVIDER_MAX_CIPHERTEXT_BYTES": str(1 * MiB),
        "HELIX_PROVIDER_MAX_QUERIES_PER_REQUEST": "128",
        "HELIX_PROVIDER_MAX_ALIGNMENT_SAMPLES": "2000",
    }
    env.update(overrides)
    return env


@dataclass
class Provider:
    """A running provider daemon plus HTTPS clients trusting only the test CA."""

    service: ServiceProcess
    data_dir: Path
    ca: str
    http: httpx.Client  # anonymous
    admin: httpx.Client  # with the admin bearer token

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def db_path(self) -> Path:
        return self.data_dir / "provider.db"


def https_client(url: str, ca: str, **kwargs: Any) -> httpx.Client:
    """An httpx client that trusts exactly the test CA (verify=<CA path>, as an SSL context)."""
    return httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca), timeout=300.0, **kwargs)


def open_provider_clients(url: str, ca: str) -> tuple[httpx.Client, httpx.Client]:
    http = https_client(url, ca)
    admin = https_client(url, ca, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return http, admin


def checked(resp: httpx.Response, status: int) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}"
    return resp.json() if resp.content else None


@pytest.fixture(scope="session")
def provider(pki: DemoPKI, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """The session's provider: head `sst2` (400 training examples, 32 published texts) and
    corpus `wiki` (400 wikipedia passages), both created through the admin API."""
    base = tmp_path_factory.mktemp("provider")
    data_dir = base / "data"
    port = free_port()
    svc = ServiceProcess("provider", "provider_server.cli", provider_env(pki, data_dir, datasets_dir, port),
                         ca_cert=pki.ca.cert, port=port, log_dir=base)
    svc.start()
    http, admin = open_provider_clients(svc.url, str(pki.ca.cert))
    try:
        checked(admin.post("/v1/admin/heads", json={"name": "sst2", "dataset": "sst2", "max_examples": 400,
                                                    "in_distribution_texts": 32}), 201)
        checked(admin.post("/v1/admin/corpora", json={"name": "wiki", "dataset": "wikipedia", "file": "passages.jsonl",
                                                      "limit": 400}), 201)
        yield Provider(service=svc, data_dir=data_dir, ca=str(pki.ca.cert), http=http, admin=admin)
    finally:
        http.close()
        admin.close()
        svc.stop()


@pytest.fixture(scope="session")
def provider_service_factory(pki: DemoPKI, datasets_dir: Path,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServiceProcess]]:
    """Make (not start) extra provider daemons, each with its own data dir and port unless given;
    all are stopped at the end of the session at the latest."""
    made: list[ServiceProcess] = []

    def make(name: str, data_dir: Path | None = None, port: int | None = None, **overrides: str) -> ServiceProcess:
        base = tmp_path_factory.mktemp(name)
        port = port or free_port()
        env = provider_env(pki, data_dir or base / "data", datasets_dir, port, **overrides)
        svc = ServiceProcess(name, "provider_server.cli", env, ca_cert=pki.ca.cert, port=port, log_dir=base)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop()


def client_env(pki: DemoPKI, data_dir: Path, datasets: Path, port: int, provider_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "HELIX_CLIENT_ENV_FILE": str(data_dir.parent / "no-such-client.env"),
        "HELIX_CLIENT_HOST": "127.0.0.1",
        "HELIX_CLIENT_PORT": str(port),
        "HELIX_CLIENT_DATA_DIR": str(data_dir),
        "HELIX_CLIENT_DATASETS_DIR": str(datasets),
        "HELIX_CLIENT_TLS_CERT": str(pki.client.cert),
        "HELIX_CLIENT_TLS_KEY": str(pki.client.key),
        "HELIX_CLIENT_PROVIDER_URL": provider_url,
        "HELIX_CLIENT_PROVIDER_CA_CERT": str(pki.ca.cert),
        "HELIX_CLIENT_EMBEDDER": "wordllama",
        "HELIX_CLIENT_CLIENT_NAME": "pytest-agent",
    }
    env.update(overrides)
    return env


@dataclass
class ClientAgent:
    service: ServiceProcess
    data_dir: Path
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.service.url

    def close(self) -> None:
        self.http.close()
        self.service.stop()


def start_client_agent(name: str, pki: DemoPKI, datasets: Path, provider: Provider, base: Path,
                       **overrides: str) -> ClientAgent:
    data_dir = base / "data"
    port = free_port()
    svc = ServiceProcess(name, "client_agent.cli", client_env(pki, data_dir, datasets, port, provider.url, **overrides),
                         ca_cert=pki.ca.cert, port=port, log_dir=base)
    try:
        svc.start()
    finally:
        if not svc.running:
            svc.stop()
    return ClientAgent(service=svc, data_dir=data_dir, http=https_client(svc.url, str(pki.ca.cert)))


@pytest.fixture(scope="session")
def client_agent_factory(pki: DemoPKI, datasets_dir: Path, provider: Provider,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ClientAgent]]:
    """Start extra agents against the session provider (each with its own data dir); whatever a
    test does not close itself is stopped at the end of the session."""
    started: list[ClientAgent] = []

    def start(name: str, **overrides: str) -> ClientAgent:
        agent = start_client_agent(name, pki, datasets_dir, provider, tmp_path_factory.mktemp(name), **overrides)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


@pytest.fixture(scope="session")
def client_agent(client_agent_factory: Callable[..., ClientAgent]) -> ClientAgent:
    return client_agent_factory("client-agent")


# --------------------------------------------------------------------------- public alignment data


@dataclass
class PublicAlignmentTexts:
    """The public texts of the `wiki` corpus and the `sst2` head, with the provider-space
    embeddings an honest provider computes for them (its encoder is public; see GET /v1/info)."""

    corpus_texts: list[str]
    head_texts: list[str]
    corpus_sha256: str
    y_corpus: Any  # np.ndarray (400, d_A)
    y_head: Any  # np.ndarray (32, d_A)


@pytest.fixture(scope="session")
def provider_encoder(provider: Provider) -> Any:
    """The provider's encoder, loaded in-process (a measuring aid: the tests recompute what the
    provider's plaintext side holds, from public texts and the publicly named model)."""
    from helix_embeddings import load_embedder

    info = checked(provider.http.get("/v1/info"), 200)
    encoder = load_embedder("minilm")
    assert encoder.model_id == info["encoder_model_id"], "the provider no longer uses the encoder the tests assume"
    return encoder


@pytest.fixture(scope="session")
def public_alignment_texts(provider: Provider, provider_encoder: Any) -> PublicAlignmentTexts:
    import numpy as np

    corpus = checked(provider.http.get("/v1/corpora/wiki/texts", params={"limit": 5000}), 200)
    assert corpus["total"] == len(corpus["texts"]) == 400
    head = checked(provider.http.get("/v1/heads/sst2/texts"), 200)
    assert len(head["texts"]) == 32
    texts = corpus["texts"] + head["texts"]
    y = provider_encoder.embed(texts).astype(np.float64)
    return PublicAlignmentTexts(corpus_texts=corpus["texts"], head_texts=head["texts"], corpus_sha256=corpus["sha256"],
                                y_corpus=y[:400], y_head=y[400:])
