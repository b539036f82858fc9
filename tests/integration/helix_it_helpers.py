"""Helpers shared by the integration tests (not a test module): HTTPS clients pinned to the test CA,
error-shape assertions, state snapshots (a refused request changes nothing), bounded polling, exact
reply decryption and uniformity statistics."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import numpy as np
import tenseal.sealapi as seal
from scipy.stats import chi2

from client_agent.provider_client import ProviderClient
from helix_he.keys import ClientKeys
from helix_he.modmath import centered
from shared_protocol.messages import KeyInfo, KeyRegistrationHeader

T = TypeVar("T")


def ssl_context(ca: str) -> ssl.SSLContext:
    """Trust exactly the test CA (what `verify=<CA path>` means, without httpx's deprecation)."""
    return ssl.create_default_context(cafile=ca)


def https_client(url: str, ca: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, verify=ssl_context(ca), timeout=kwargs.pop("timeout", 300.0), **kwargs)


def assert_api_error(resp: httpx.Response, status: int, code: str, *detail_contains: str) -> dict[str, str]:
    """A clear 4xx: the status, JSON {"error", "detail"} with the expected code, and a detail that
    names the problem (each of `detail_contains`, case-insensitive)."""
    where = f"{resp.request.method} {resp.request.url.path}"
    assert resp.status_code == status, f"{where}: expected {status} {code}, got {resp.status_code}: {resp.text[:1000]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), f"{where}: {resp.headers}"
    body = resp.json()
    assert set(body) == {"error", "detail"}, f"{where}: error body has keys {sorted(body)}"
    assert body["error"] == code, f"{where}: error code {body['error']!r}, expected {code!r} ({body['detail']})"
    assert isinstance(body["detail"], str) and body["detail"].strip(), f"{where}: empty detail"
    for word in detail_contains:
        assert word.lower() in body["detail"].lower(), f"{where}: detail {body['detail']!r} does not mention {word!r}"
    return body


def poll_until(
    fetch: Callable[[], T], done: Callable[[T], bool], *, deadline_s: float, what: str, interval_s: float = 0.25
) -> T:
    """Call `fetch` until `done(value)`, failing after `deadline_s` with the last value."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not done after {deadline_s:.0f} s; last state: {value!r}")
        time.sleep(interval_s)  # polling interval with a bounded deadline


# --------------------------------------------------------------------------- state snapshots


#: Tables a refused request may change by design: a registration spends the challenge it names
#: whatever its outcome (a seed is never tried twice, and issuing one for the test is not the refused
#: request), and a request that got past the cheap checks spent a token of its tenant's rate bucket
#: (the bucket limits attempts). `sqlite_sequence` is SQLite's own bookkeeping.
SNAPSHOT_EXCLUDED = frozenset({"challenges", "rate_buckets", "sqlite_sequence"})


def db_snapshot(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but SNAPSHOT_EXCLUDED."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if r[0] not in SNAPSHOT_EXCLUDED
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def files_snapshot(root: Path) -> list[tuple[str, int]]:
    if not root.exists():
        return []
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


@dataclass
class Snapshot:
    db: dict[str, list[tuple[Any, ...]]]
    blobs: list[tuple[str, int]]
    sessions: list[tuple[str, int]]
    api: dict[str, Any]


def snapshot(provider: Any, session_ids: tuple[str, ...] = ()) -> Snapshot:
    api = {
        "heads": provider.admin.get("/v1/admin/heads").json(),
        "clients": provider.admin.get("/v1/admin/clients").json(),
        "corpora": provider.http.get("/v1/corpora").json(),
    }
    for sid in session_ids:
        api[sid] = provider.http.get(f"/v1/alignments/{sid}").json()
    return Snapshot(
        db=db_snapshot(provider.db_path),
        blobs=files_snapshot(provider.data_dir / "blobs"),
        sessions=files_snapshot(provider.data_dir / "sessions"),
        api=api,
    )


def assert_refused_without_effect(
    provider: Any,
    send: Callable[[], httpx.Response],
    status: int,
    code: str,
    *detail_contains: str,
    session_ids: tuple[str, ...] = (),
) -> dict[str, str]:
    before = snapshot(provider, session_ids)
    resp = send()
    body = assert_api_error(resp, status, code, *detail_contains)
    after = snapshot(provider, session_ids)
    assert after.api == before.api, "a refused request changed what the API reports"
    assert after.db == before.db, "a refused request changed the provider's database"
    assert after.blobs == before.blobs, "a refused request wrote or deleted blobs"
    assert after.sessions == before.sessions, "a refused request touched stored session ciphertexts"
    return body


# --------------------------------------------------------------------------- exact decryption


def raw_reply_residues(keys: ClientKeys, blob: bytes, max_bytes: int = 1 << 22) -> tuple[np.ndarray, int, float]:
    """Decrypt a last-level reply ciphertext to its raw plaintext coefficients: residues in [0, q)
    of the single remaining prime q, plus q and the plaintext scale. Uses only the client's own
    secret key and the shared HEContext helpers (the same path `decrypt_whole` takes, one step
    earlier: before centring and dividing by the scale)."""
    he = keys.he
    ct = he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=max_bytes)
    pt = seal.Plaintext()
    seal.Decryptor(he.context, keys.secret_key).decrypt(ct, pt)
    res = he.plaintext_residues(pt)
    assert res.shape == (1, he.n), f"reply plaintext has {res.shape[0]} primes, expected 1"
    q = he.output_level.primes[0]
    return he.ntt(q).inverse(res[0]), q, float(pt.scale)


def centred_values(residues: np.ndarray, q: int, scale: float) -> np.ndarray:
    return centered(residues, q).astype(np.float64) / scale


def assert_uniform_mod_q(residues: np.ndarray, q: int, what: str, bins: int = 16) -> None:
    """Residues that should be uniform on [0, q): a chi-square test over `bins` equal bins
    (p > 1e-6), no bin below half its expectation, and no excess of small centred values.

    Small values: an unmasked partial product of the circuit is |c| <~ 2^44 at scale 2^40, so
    thousands of coefficients would be small. Uniform residues are small with probability
    2^(b+1)/q only (q ~ 2^60): ~0.25 of 8190 below 2^44 and ~16 of 8190 below 2^50."""
    r = np.asarray(residues, dtype=np.uint64)
    n = r.size
    assert n >= 16 * bins, f"{what}: too few coefficients ({n}) for a uniformity test"
    assert int(r.max()) < q, f"{what}: residue out of range"
    idx = np.minimum((r.astype(np.float64) / q * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    expected = n / bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    limit = float(chi2.isf(1e-6, bins - 1))
    assert stat < limit, f"{what}: chi-square {stat:.1f} >= {limit:.1f} over {bins} bins; counts {counts.tolist()}"
    assert counts.min() > expected / 2, f"{what}: a bin is nearly empty; counts {counts.tolist()}"
    c = np.abs(centered(r, q))
    for bits in (44, 50):
        small = int(np.count_nonzero(c < (1 << bits)))
        mean = n * 2.0 ** (bits + 1) / q
        bound = mean + 6 * np.sqrt(mean) + 6
        assert small <= bound, (
            f"{what}: {small} of {n} coefficients have |c| < 2^{bits} (uniform: ~{mean:.1f}); "
            "unmasked partial products?"
        )


# --------------------------------------------------------------------------- raw HTTP


def raw_https_exchange(
    url: str, ca: str, request_head: bytes, body_parts: Iterable[bytes] = (), timeout_s: float = 60.0
) -> tuple[int, dict[str, str], bytes]:
    """Send a hand-written HTTP/1.1 request over TLS and read the response until the server closes.
    For requests httpx will not send (a Content-Length without its body). Write errors after the
    head are tolerated: a server may answer and close before the body is complete."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    ctx = ssl_context(ca)
    with (
        socket.create_connection((host, port), timeout=timeout_s) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.sendall(request_head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                headers = _parse_headers(head)
                length = headers.get("content-length")
                if length is not None and len(rest) >= int(length):
                    break
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head, "no HTTP response received"
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    headers = _parse_headers(head)
    if "content-length" in headers:
        rest = rest[: int(headers["content-length"])]
    return status, headers, rest


def _parse_headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out[name.strip().lower().decode()] = value.strip().decode()
    return out


# --------------------------------------------------------------------------- key registration


def register_seeded(
    pc: ProviderClient, keys: ClientKeys, header: KeyRegistrationHeader, stride_bits: int = 0
) -> KeyInfo:
    """Register `keys` as a client does: take a challenge, expand the keys' uniform halves from its
    seed (`header.galois_elements` must be those of `stride_bits`) and name it in the header."""
    challenge = pc.key_challenge()
    seed = bytes.fromhex(challenge.seed)
    return pc.register_key(
        header.model_copy(update={"challenge_id": challenge.challenge_id}),
        keys.public_key_bytes(seed),
        keys.galois_key_bytes(stride_bits, seed) or None,
    )


def create_tenant(admin: httpx.Client, name: str, **quotas: Any) -> tuple[str, str]:
    """(tenant id, API key) of a new tenant created through the admin API, with these quota overrides."""
    resp = admin.post("/v1/admin/tenants", json={"name": name, "quotas": quotas})
    assert resp.status_code == 201, resp.text
    tenant_id = resp.json()["tenant_id"]
    resp = admin.post(f"/v1/admin/tenants/{tenant_id}/api-keys")
    assert resp.status_code == 201, resp.text
    return tenant_id, resp.json()["api_key"]


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def fresh_challenge(http: httpx.Client) -> tuple[str, bytes]:
    """(challenge id, seed) of a new challenge, over a plain HTTPS client."""
    resp = http.post("/v1/keys/challenges")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return body["challenge_id"], bytes.fromhex(body["seed"])


# --------------------------------------------------------------------------- own daemons for fault tests

ADMIN_TOKEN_HEADER = {"Authorization": "Bearer pytest-admin-token-3f9c2a"}  # the token tests/conftest.py sets


def admin_client(url: str, ca: str) -> httpx.Client:
    return https_client(url, ca, headers=ADMIN_TOKEN_HEADER)


def stock_provider(admin: httpx.Client, *, head_examples: int = 200, corpus_limit: int = 600) -> str:
    """Head `sst2` (no published texts) and corpus `wiki` on a fresh provider (a client of dimension D
    needs corpus_limit >= 2 (D + 1)), and a tenant `stock`; returns its API key for the agents."""
    head = {"name": "sst2", "dataset": "sst2", "max_examples": head_examples, "in_distribution_texts": 0}
    resp = admin.post("/v1/admin/heads", json=head)
    assert resp.status_code == 201, resp.text
    corpus = {"name": "wiki", "dataset": "wikipedia", "file": "passages.jsonl", "limit": corpus_limit}
    resp = admin.post("/v1/admin/corpora", json=corpus)
    assert resp.status_code == 201, resp.text
    return create_tenant(admin, "stock")[1]


def align(agent: httpx.Client, *, deadline_s: float = 600.0, **body: Any) -> dict[str, Any]:
    """Start an alignment on the agent and follow its job to the end; returns the final job."""
    resp = agent.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": "wiki", **body})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    return poll_until(
        lambda: agent.get(f"/v1/alignments/{job_id}").json(),
        lambda job: job["state"] != "running",
        deadline_s=deadline_s,
        what=f"alignment job {job_id}",
    )


def tree_bytes(root: Path, *, skip: tuple[str, ...] = ()) -> int:
    """Total size of the files under `root`, leaving out top-level entries named in `skip`."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in skip)
