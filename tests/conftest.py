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
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helix_pki import DemoPKI, ensure_demo_pki
from helix_web import launcher
from helix_web.launcher import Daemon, DaemonError, free_port
from tests.pg_server import pg_url, postgres  # noqa: F401  (fixtures: a private PostgreSQL server)
from tests.ray_support import ray_cluster  # noqa: F401  (a fixture: the session's Ray cluster)

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_DEADLINE_S = 120.0
ADMIN_TOKEN = "pytest-admin-token-3f9c2a"
MiB = 1024 * 1024

#: Every daemon started in this session, so a failing test's report can show their logs.
_SERVICES: list[ServiceProcess] = []


# --------------------------------------------------------------------------- daemons


class ServiceProcess(Daemon):
    """A daemon of the shared launcher that fails the test (with its log) instead of raising, and that
    the report hook below knows about. The tests decide every setting: the parent's HELIX_PROVIDER_* /
    HELIX_CLIENT_* variables are not passed on."""

    def __init__(
        self, name: str, module: str, env: Mapping[str, str], *, ca_cert: Path, port: int, log_dir: Path
    ) -> None:
        super().__init__(
            name, module, env, ca_cert=ca_cert, port=port, log_dir=log_dir, cwd=REPO_ROOT, pythonpath=REPO_ROOT
        )

    def start(self, deadline_s: float = READY_DEADLINE_S) -> ServiceProcess:
        assert not self.running, f"{self.name} is already running"
        if self not in _SERVICES:
            _SERVICES.append(self)
        try:
            super().start(deadline_s)
        except DaemonError as exc:
            pytest.fail(str(exc), pytrace=False)
        return self


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
    env = launcher.provider_env(
        pki=pki,
        port=port,
        data_dir=data_dir,
        datasets_dir=datasets,
        admin_token=ADMIN_TOKEN,
        env_file=str(data_dir.parent / "no-such-provider.env"),
        workers="2",
        max_request_bytes=str(32 * MiB),
        max_ciphertext_bytes=str(1 * MiB),
        max_queries_per_request="128",
        max_alignment_samples="2000",
    )
    env.update(overrides)
    return env


@dataclass
class Provider:
    """A running provider daemon plus HTTPS clients trusting only the test CA, and the tenant every
    test acts as unless it makes its own."""

    service: ServiceProcess
    data_dir: Path
    ca: str
    http: httpx.Client  # with the default tenant's API key
    admin: httpx.Client  # with the admin bearer token
    anon: httpx.Client  # no credentials at all
    tenant_id: str
    api_key: str

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
    """(anonymous, admin) clients."""
    http = https_client(url, ca)
    admin = https_client(url, ca, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return http, admin


def tenant_client(url: str, ca: str, api_key: str) -> httpx.Client:
    return https_client(url, ca, headers={"Authorization": f"Bearer {api_key}"})


def checked(resp: httpx.Response, status: int) -> Any:
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}"
    )
    return resp.json() if resp.content else None


@pytest.fixture(scope="session")
def provider(pki: DemoPKI, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """The session's provider: head `sst2` (400 training examples, 32 published texts), corpus
    `wiki` (400 wikipedia passages) and tenant `pytest` with one API key, all created through the
    admin API."""
    base = tmp_path_factory.mktemp("provider")
    data_dir = base / "data"
    port = free_port()
    svc = ServiceProcess(
        "provider",
        "provider_server.cli",
        provider_env(pki, data_dir, datasets_dir, port),
        ca_cert=pki.ca.cert,
        port=port,
        log_dir=base,
    )
    from helix_it_helpers import create_tenant

    svc.start()
    anon, admin = open_provider_clients(svc.url, str(pki.ca.cert))
    tenant_id, api_key = create_tenant(admin, "pytest")
    http = tenant_client(svc.url, str(pki.ca.cert), api_key)
    try:
        checked(
            admin.post(
                "/v1/admin/heads",
                json={"name": "sst2", "dataset": "sst2", "max_examples": 400, "in_distribution_texts": 32},
            ),
            201,
        )
        checked(
            admin.post(
                "/v1/admin/corpora",
                json={"name": "wiki", "dataset": "wikipedia", "file": "passages.jsonl", "limit": 400},
            ),
            201,
        )
        yield Provider(
            service=svc,
            data_dir=data_dir,
            ca=str(pki.ca.cert),
            http=http,
            admin=admin,
            anon=anon,
            tenant_id=tenant_id,
            api_key=api_key,
        )
    finally:
        http.close()
        admin.close()
        anon.close()
        svc.stop()


@pytest.fixture(scope="session")
def provider_service_factory(
    pki: DemoPKI, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServiceProcess]]:
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


def client_env(
    pki: DemoPKI, data_dir: Path, datasets: Path, port: int, provider_url: str, api_key: str, **overrides: str
) -> dict[str, str]:
    env = launcher.client_env(
        pki=pki,
        port=port,
        data_dir=data_dir,
        provider_url=provider_url,
        embedder="wordllama",
        client_name="pytest-agent",
        env_file=str(data_dir.parent / "no-such-client.env"),
        datasets_dir=str(datasets),
        provider_api_key=api_key,
    )
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


def start_client_agent(
    name: str, pki: DemoPKI, datasets: Path, provider: Provider, base: Path, **overrides: str
) -> ClientAgent:
    data_dir = base / "data"
    port = free_port()
    svc = ServiceProcess(
        name,
        "client_agent.cli",
        client_env(pki, data_dir, datasets, port, provider.url, provider.api_key, **overrides),
        ca_cert=pki.ca.cert,
        port=port,
        log_dir=base,
    )
    try:
        svc.start()
    finally:
        if not svc.running:
            svc.stop()
    return ClientAgent(service=svc, data_dir=data_dir, http=https_client(svc.url, str(pki.ca.cert)))


@pytest.fixture(scope="session")
def client_agent_factory(
    pki: DemoPKI, datasets_dir: Path, provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ClientAgent]]:
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
    return PublicAlignmentTexts(
        corpus_texts=corpus["texts"],
        head_texts=head["texts"],
        corpus_sha256=corpus["sha256"],
        y_corpus=y[:400],
        y_head=y[400:],
    )
