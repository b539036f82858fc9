"""A provider and a client agent on loopback for ``helix-generate private-mc``, started as an operator would.

Why real daemons: the measurement is of the deployed path (TLS, the agent's key handling, the provider's HE
worker), not of the HE core alone. Both are configured through their environment only, with a throw-away
local PKI and admin token, and stopped whatever happens.
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from helix_pki import ensure_demo_pki
from helix_web.launcher import Daemon, client_env, free_port, provider_env

from .data import datasets_root

#: The tree this module belongs to: the daemons run its code, whatever is installed.
ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 300.0
REQUEST_TIMEOUT_S = 3600.0  # creating a corpus embeds every text with the provider's LLM


@dataclass(frozen=True)
class RunningPair:
    admin: httpx.Client  # the provider's admin API
    agent: httpx.Client  # the client agent's API
    provider_data: Path
    agent_data: Path

    @property
    def embedding_caches(self) -> tuple[Path, Path]:
        """Where each daemon caches its embeddings (``<data_dir>/embedding-cache``, see their ``state``)."""
        return self.provider_data / "embedding-cache", self.agent_data / "embedding-cache"


@contextmanager
def running_pair(
    provider_encoder: str, client_embedder: str, work: Path, *, max_alignment_samples: int = 20000
) -> Iterator[RunningPair]:
    """A provider embedding with ``provider_encoder`` and an agent embedding with ``client_embedder``
    under ``work`` (data, logs, PKI); one HE worker, the machine's other core left to the embedders."""
    work = work.resolve()
    pki = ensure_demo_pki(work / "pki")
    token = secrets.token_urlsafe(16)
    ca = ssl.create_default_context(cafile=str(pki.ca.cert))
    none_env = str(work / "none.env")
    p_port, c_port = free_port(), free_port()
    penv = provider_env(
        pki=pki,
        port=p_port,
        data_dir=work / "provider",
        datasets_dir=datasets_root().resolve(),
        admin_token=token,
        env_file=none_env,
        encoder=provider_encoder,
        workers="1",
        max_alignment_samples=str(max_alignment_samples),
    )
    daemons: list[Daemon] = []

    def make(name: str, module: str, env: dict[str, str], port: int) -> Daemon:
        made = Daemon(
            name,
            module,
            env,
            ca_cert=pki.ca.cert,
            port=port,
            log_dir=work / "logs",
            cwd=ROOT,
            pythonpath=ROOT,
            die_with_parent=True,
        )
        daemons.append(made)  # registered before it starts: stopped whatever fails later
        return made

    try:
        provider = make("provider", "provider_server.cli", penv, p_port).start(START_DEADLINE_S)
        api_key = _tenant_api_key(provider.url, ca, token)
        cenv = client_env(
            pki=pki,
            port=c_port,
            data_dir=work / "agent",
            provider_url=provider.url,
            embedder=client_embedder,
            client_name="private-mc",
            env_file=none_env,
            request_timeout_seconds=str(REQUEST_TIMEOUT_S),
            provider_api_key=api_key,
        )
        agent = make("agent", "client_agent.cli", cenv, c_port).start(START_DEADLINE_S)
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=provider.url, verify=ca, timeout=REQUEST_TIMEOUT_S, headers=headers) as admin,
            httpx.Client(base_url=agent.url, verify=ca, timeout=REQUEST_TIMEOUT_S) as agent_http,
        ):
            yield RunningPair(admin, agent_http, work / "provider", work / "agent")
    finally:
        for daemon in reversed(daemons):
            daemon.stop()


def _tenant_api_key(url: str, ca: ssl.SSLContext, token: str) -> str:
    """The agent's tenant on the fresh provider, and its API key."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, verify=ca, timeout=REQUEST_TIMEOUT_S, headers=headers) as admin:
        tenant = admin.post("/v1/admin/tenants", json={"name": "private-mc"})
        tenant.raise_for_status()
        key = admin.post(f"/v1/admin/tenants/{tenant.json()['tenant_id']}/api-keys")
        key.raise_for_status()
        return str(key.json()["api_key"])


def default_work_dir() -> Path:
    """``$HELIX_PRIVATE_MC_WORK``, else ``.helix/private-mc`` (git-ignored)."""
    return Path(os.environ.get("HELIX_PRIVATE_MC_WORK", ".helix/private-mc"))
