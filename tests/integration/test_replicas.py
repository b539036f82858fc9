"""Three provider replicas on one database and one data directory, behind a real HAProxy, with a real
client agent pointed at the balancer; one replica is SIGKILLed during an alignment and another during
a classify load.

What must hold: every agent request is answered (200, possibly after the agent retried), the agent's
registered key keeps working on the replicas that are left, and the alignment whose computing replica
died completes in its one session, computed again on a live replica once the dead one's lease ran out.
The balancer's log says which replica served each request and what was retried.

The database URL comes from one fixture (`replica_database_url`): PostgreSQL by default (the test session's
real server); HELIX_TEST_REPLICA_DATABASE_URL=sqlite (or any URL) switches the whole module.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from helix_it_helpers import (
    ADMIN_TOKEN_HEADER,
    admin_client,
    bearer,
    create_tenant,
    https_client,
    poll_until,
    stock_provider,
)

from client_agent.provider_client import ProviderClient, ProviderError
from helix_he.keys import ClientKeys
from helix_he.linear_head import encrypt_queries
from helix_he.packing import LinearHeadLayout
from helix_pki import DemoPKI
from helix_web.launcher import Daemon, client_env, free_port
from provider_server.balancer import HealthCheck
from shared_protocol.messages import ClassifyHeader, KeyPurpose, KeyRegistrationHeader
from tests.replicas_support import BalancedRequest, Balancer, ReplicaSet, haproxy_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = ADMIN_TOKEN_HEADER["Authorization"].removeprefix("Bearer ")
#: Short enough that a dead replica's computation is taken over within seconds.
LEASE_SECONDS = 4
TEXTS = ["a gripping , beautifully acted film .", "dull and far too long .", "an instant classic .", "tedious ."]


@pytest.fixture(scope="module")
def replica_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one database every replica of this module shares: a fresh database on the test session's real
    PostgreSQL server (what replicas run on), or one SQLite file with HELIX_TEST_REPLICA_DATABASE_URL=sqlite
    (several processes on one host), or any URL given there."""
    url = os.environ.get("HELIX_TEST_REPLICA_DATABASE_URL")
    if url == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('replica-db') / 'provider.db'}"
    if url:
        return url
    return str(request.getfixturevalue("postgres").create_database())


@dataclass
class Cluster:
    replicas: ReplicaSet
    balancer: Balancer
    agent: Daemon
    agent_http: httpx.Client
    admin: httpx.Client
    ca: str
    api_key: str


@pytest.fixture(scope="module")
def cluster(
    pki: DemoPKI, datasets_dir: Path, replica_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if haproxy_binary() is None:
        pytest.fail("haproxy is not installed (`make install` installs it: apt-get install haproxy)", pytrace=False)
    base = tmp_path_factory.mktemp("replicas")
    replicas = ReplicaSet(
        pki=pki,
        datasets=datasets_dir,
        base=base,
        database_url=replica_database_url,
        count=3,
        admin_token=ADMIN_TOKEN,
        settings={
            "workers": "1",
            "alignment_workers": "1",
            "compute_lease_seconds": str(LEASE_SECONDS),
            "max_alignment_samples": "2000",
        },
    ).make()
    balancer: Balancer | None = None
    agent: Daemon | None = None
    try:
        replicas.start()
        balancer = Balancer(
            pki, replicas.backends(), base / "balancer", health=HealthCheck(interval_ms=500, fall=2, rise=2)
        ).start()
        balancer.wait_servers_up(set(replicas.names()))
        ca = str(pki.ca.cert)
        admin = admin_client(balancer.url, ca)
        api_key = stock_provider(admin, head_examples=200, corpus_limit=600)
        port = free_port()
        agent = Daemon(
            "replica-agent",
            "client_agent.cli",
            client_env(
                pki=pki,
                port=port,
                data_dir=base / "agent" / "data",
                provider_url=balancer.url,
                embedder="wordllama",
                client_name="replica-agent",
                env_file=str(base / "no-such-client.env"),
                datasets_dir=str(datasets_dir),
                provider_api_key=api_key,
                alignment_chunk_ciphertexts="1",
                provider_retry_seconds="20",
            ),
            ca_cert=pki.ca.cert,
            port=port,
            log_dir=base / "agent",
            cwd=REPO_ROOT,
            pythonpath=REPO_ROOT,
        ).start()
        agent_http = https_client(agent.url, ca)
        yield Cluster(replicas, balancer, agent, agent_http, admin, ca, api_key)
        agent_http.close()
        admin.close()
    finally:
        if agent is not None:
            agent.stop()
        if balancer is not None:
            balancer.stop()
        replicas.stop()


def _served(requests: list[BalancedRequest], method: str, suffix: str, status: int | None = None) -> list[str]:
    return [
        r.server
        for r in requests
        if r.method == method and r.path.endswith(suffix) and (status is None or r.status == status)
    ]


def test_rate_limits_hold_across_replicas(cluster: Cluster) -> None:
    """A tenant's bucket of 3 creation tokens is one bucket, whichever replicas its requests reach."""
    _, api_key = create_tenant(cluster.admin, "bursty", rate_burst=3, rate_per_second=0.001)
    seen = len(cluster.balancer.requests())
    with https_client(cluster.balancer.url, cluster.ca, headers=bearer(api_key)) as http:
        codes = [http.post("/v1/keys/challenges").status_code for _ in range(6)]
    assert codes == [201, 201, 201, 429, 429, 429]
    servers = _served(cluster.balancer.requests()[seen:], "POST", "/v1/keys/challenges")
    assert len(set(servers)) == 3, f"the requests did not spread over the replicas: {servers}"


def test_a_revoked_key_and_a_deleted_head_stop_working_on_every_replica(cluster: Cluster) -> None:
    """Keys and heads are looked up in the shared store on every request (a replica caches only the
    prepared HE objects of content-addressed blobs), so a revocation or deletion made through one
    replica is refused by every replica at once."""
    head = {"name": "tiny", "dataset": "sst2", "max_examples": 40, "in_distribution_texts": 0}
    assert cluster.admin.post("/v1/admin/heads", json=head).status_code == 201
    with ProviderClient(cluster.balancer.url, Path(cluster.ca), api_key=cluster.api_key) as pc:
        header, queries = _inference_queries(pc)
    direct = [ProviderClient(d.url, Path(cluster.ca), api_key=cluster.api_key) for d in cluster.replicas.daemons]
    try:
        for pc in direct:
            for head_id in ("sst2", "tiny"):
                pc.classify(header.model_copy(update={"head_id": head_id}), queries, max_blob_bytes=1 << 22)
        assert cluster.admin.delete("/v1/admin/heads/tiny").status_code in (200, 204)
        for pc in direct:
            with pytest.raises(ProviderError) as gone:
                pc.classify(header.model_copy(update={"head_id": "tiny"}), queries, max_blob_bytes=1 << 22)
            assert (gone.value.status, gone.value.code) == (404, "unknown_head"), pc.base_url
        with ProviderClient(cluster.balancer.url, Path(cluster.ca), api_key=cluster.api_key) as pc:
            pc.revoke_key(header.key_id)
        for pc in direct:
            with pytest.raises(ProviderError) as revoked:
                pc.classify(header, queries, max_blob_bytes=1 << 22)
            assert (revoked.value.status, revoked.value.code) == (404, "unknown_key"), pc.base_url
    finally:
        for pc in direct:
            pc.close()


def _inference_queries(pc: ProviderClient) -> tuple[ClassifyHeader, list[bytes]]:
    """A newly registered inference key and two queries encrypted under it, for head `sst2`."""
    head = pc.head("sst2")
    pset = head.parameter_sets[0]
    keys = ClientKeys.generate(pset)
    challenge = pc.key_challenge()
    seed = bytes.fromhex(challenge.seed)
    registration = KeyRegistrationHeader(
        client_name="replica-test",
        purpose=KeyPurpose.inference,
        parameter_set=pset,
        galois_elements=[],
        challenge_id=challenge.challenge_id,
    )
    key = pc.register_key(registration, keys.public_key_bytes(seed))
    x = np.random.default_rng(3).normal(0.0, 0.05, size=(2, head.dim))
    header = ClassifyHeader(
        head_id="sst2", key_id=key.key_id, num_queries=2, query_scale_bits=keys.he.params.query_scale_bits
    )
    return header, encrypt_queries(keys, x, LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes))


def test_an_alignment_completes_when_the_replica_computing_it_is_killed(cluster: Cluster) -> None:
    """Upload, compute and result go to different replicas (each request is balanced on its own); the
    replica that claimed the computation is SIGKILLed while it computes. Its lease runs out, the
    session reads as interrupted, the agent starts the computation again and a live replica runs it:
    the alignment completes in its one session, and its map classifies."""
    balancer, replicas = cluster.balancer, cluster.replicas
    agent_retries_before = _agent_retries(cluster.agent)
    seen = len(balancer.requests())
    resp = cluster.agent_http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "wiki"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]

    def first_compute() -> list[str]:
        return _served(balancer.requests()[seen:], "POST", "/compute", 202)

    claimed = poll_until(first_compute, bool, deadline_s=300, what="the first POST .../compute", interval_s=0.05)
    victim = claimed[0]
    job = cluster.agent_http.get(f"/v1/alignments/{job_id}").json()
    assert job["state"] == "running", f"the alignment ended before its replica could be killed: {job}"
    replicas.kill(victim)
    killed_at = time.monotonic()

    final = poll_until(
        lambda: cluster.agent_http.get(f"/v1/alignments/{job_id}").json(),
        lambda j: j["state"] != "running",
        deadline_s=240,
        what="the alignment after its replica was killed",
    )
    took = time.monotonic() - killed_at
    assert final["state"] == "done" and final["map_id"], final
    requests = balancer.requests()[seen:]
    creations = _served(requests, "POST", "/v1/alignments")
    assert len(creations) == 1, f"the alignment needed another session: {creations}"
    computes = _served(requests, "POST", "/compute", 202)
    assert len(computes) >= 2 and victim not in computes[1:], f"no live replica took the computation over: {computes}"
    uploads = _served(requests, "PUT", "/chunks", 200)
    results = _served(requests, "GET", "/result", 200)
    assert len(set(uploads)) >= 2, f"every chunk went to one replica: {uploads}"
    assert results and victim not in results
    session_servers = {r.server for r in requests if "/v1/alignments" in r.path}
    assert session_servers >= set(replicas.names()), f"the session did not move over all replicas: {session_servers}"
    retried = [r for r in requests if r.status >= 500 or r.retries]
    print(
        f"alignment: replica {victim} killed mid-compute, done {took:.1f} s later; computes {computes}, "
        f"uploads {Counter(uploads)}, result from {results}; 5xx or retried at the balancer: {len(retried)}; "
        f"the agent retried {_agent_retries(cluster.agent) - agent_retries_before}"
    )

    answer = cluster.agent_http.post("/v1/classify", json={"head_id": "sst2", "texts": TEXTS[:1]})
    assert answer.status_code == 200, answer.text
    replicas.by_name(victim).start(180)  # back for the next test, under the same replica id
    balancer.wait_servers_up(set(replicas.names()))


def test_a_classify_load_loses_nothing_when_a_replica_is_killed(cluster: Cluster) -> None:
    """Two agent callers classify without pause; a replica is SIGKILLed mid-load. Every call answers
    200 (the balancer redispatches failed connections, the agent retries what the dead replica had
    taken), and the agent's inference key, registered once, keeps classifying on both other replicas."""
    balancer, replicas = cluster.balancer, cluster.replicas
    agent_retries_before = _agent_retries(cluster.agent)
    warm = cluster.agent_http.post("/v1/classify", json={"head_id": "sst2", "texts": TEXTS})  # registers the key
    assert warm.status_code == 200, warm.text
    keys_before = _inference_keys(cluster.admin)
    seen = len(balancer.requests())
    statuses: list[int] = []
    failures: list[str] = []
    killed = threading.Event()
    after_kill = Counter[int]()
    lock = threading.Lock()

    def caller(index: int) -> None:
        with https_client(cluster.agent.url, cluster.ca) as http:
            while True:
                with lock:
                    if after_kill[index] >= 15:
                        return
                resp = http.post("/v1/classify", json={"head_id": "sst2", "texts": [TEXTS[index % len(TEXTS)]]})
                with lock:
                    statuses.append(resp.status_code)
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code}: {resp.text[:300]}")
                    if killed.is_set():
                        after_kill[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        poll_until(
            lambda: len(_served(balancer.requests()[seen:], "POST", "/v1/classify", 200)),
            lambda n: n >= 10,
            deadline_s=120,
            what="classify load under way",
            interval_s=0.05,
        )
        victim = "r2"
        replicas.kill(victim)
        killed.set()
    finally:
        for t in threads:
            t.join(180)
    assert not any(t.is_alive() for t in threads), "a classify caller hung"
    assert not failures, f"{len(failures)} of {len(statuses)} classify calls failed: {failures[:3]}"
    assert statuses and set(statuses) == {200}

    requests = balancer.requests()[seen:]
    classify = [r for r in requests if r.path == "/v1/classify"]
    dead_index = max(i for i, r in enumerate(classify) if r.server == victim and r.status == 200)
    later_ok = {r.server for r in classify[dead_index + 1 :] if r.status == 200}
    assert later_ok == set(replicas.names()) - {victim}, f"after the kill, classify answered only on {later_ok}"
    assert _inference_keys(cluster.admin) == keys_before, "the agent registered its key again"
    retried = [r for r in classify if r.status >= 500 or r.retries or r.server == "<NOSRV>"]
    counters = balancer.backend_counters()
    print(
        f"classify: {len(statuses)} agent calls, all 200; balancer saw {len(classify)} provider calls, "
        f"{len(retried)} of them failed or retried ({Counter((r.status, r.retries) for r in retried)}); "
        f"backend counters {counters}; the agent retried {_agent_retries(cluster.agent) - agent_retries_before}"
    )


def _agent_retries(agent: Daemon) -> int:
    """Provider calls the agent sent again (it logs each one)."""
    return sum(1 for line in agent.log_text().splitlines() if "provider call" in line and "retried" in line)


def _inference_keys(admin: httpx.Client) -> set[str]:
    resp = admin.get("/v1/admin/clients")
    assert resp.status_code == 200, resp.text
    return {k["key_id"] for c in resp.json() for k in c["keys"] if k.get("purpose") == "inference"}
