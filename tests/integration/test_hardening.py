"""Hardening against the real daemons: inputs an outside probe found answered with plain-text 500s
(or accepted when they should not be) now get a clear JSON error naming the problem and change
nothing; both daemons keep their files private. (A full disk is tested on the provider's stores in
tests/unit/provider_server/test_private_files.py: a file-size limit on the whole daemon would also stop
the HE library, which serialises through temporary files.)"""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helix_it_helpers import (
    assert_api_error,
    assert_refused_without_effect,
    files_snapshot,
    https_client,
    register_seeded,
)

from client_agent.keystore import KeyStore
from client_agent.maps import MapStore
from client_agent.provider_client import ProviderClient
from helix_alignment import AffineMap
from helix_he.cross_covariance import encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.packing import CrossCovarianceLayout, trace_galois_elements
from helix_web.launcher import free_port
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import AlignmentChunkHeader, AlignmentCreate, KeyPurpose, KeyRegistrationHeader

PSET = "ckks-n8192-q200"
FRAME = {"content-type": FRAME_MEDIA_TYPE}
BAD_IDS = ("..", ".", "-", ".hidden", "a/b", "a\nb", "a\0b", "x" * 65)


def kept_alive(resp: httpx.Response) -> httpx.Response:
    """An error answer that keeps the connection (a crash's plain 500 closes it)."""
    assert resp.headers.get("connection", "").lower() != "close", f"connection dropped: {resp.headers}"
    return resp


def upload_head(provider: Any, rows: list[Any] | bytes, **params: str) -> Callable[[], httpx.Response]:
    body = rows if isinstance(rows, bytes) else "\n".join(json.dumps(r) for r in rows).encode()
    query = {"name": "hardening-upload", **params}
    return lambda: kept_alive(provider.admin.post("/v1/admin/heads/upload", params=query, content=body))


ROWS = [{"text": "good", "label": 0}, {"text": "bad", "label": 1}, {"text": "fine", "label": 0}]


# --------------------------------------------------------------------------- provider: heads and corpora


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_head_seed_outside_32_bits_is_422(provider: Any, seed: int) -> None:
    body = {"name": "hardening-seed", "dataset": "sst2", "max_examples": 20, "seed": seed}
    assert_refused_without_effect(
        provider, lambda: kept_alive(provider.admin.post("/v1/admin/heads", json=body)), 422, "invalid_request", "seed"
    )
    assert_refused_without_effect(provider, upload_head(provider, ROWS, seed=str(seed)), 422, "invalid_request", "seed")


@pytest.mark.parametrize("c", ["Infinity", "NaN", "1e-300", "1e7"])
def test_regularization_c_must_be_finite_and_bounded(provider: Any, c: str) -> None:
    raw = f'{{"name": "hardening-c", "dataset": "sst2", "max_examples": 20, "regularization_c": {c}}}'.encode()
    send = lambda: kept_alive(  # noqa: E731
        provider.admin.post("/v1/admin/heads", content=raw, headers={"content-type": "application/json"})
    )
    assert_refused_without_effect(provider, send, 422, "invalid_request", "regularization_c")
    query = {"regularization_c": {"Infinity": "inf", "NaN": "nan"}.get(c, c)}
    assert_refused_without_effect(provider, upload_head(provider, ROWS, **query), 422, "invalid_request", "regular")


@pytest.mark.parametrize(
    ("labels", "words"),
    [((0, 1000), ("[0, 256)",)), ((0, 1, 1000000), ("[0, 256)",)), ((0, 2), ("dense", "[1]"))],
)
def test_labels_must_be_bounded_and_dense(provider: Any, labels: tuple[int, ...], words: tuple[str, ...]) -> None:
    """{0, 1, 1000000} once made a million-class head (4.3 GB of memory from an 82-byte upload)."""
    rows = [{"text": f"text {i}", "label": lab} for i, lab in enumerate(labels)]
    assert_refused_without_effect(provider, upload_head(provider, rows), 422, "invalid_jsonl", *words)


def test_too_many_named_classes_are_422(provider: Any) -> None:
    names = ",".join(f"c{i}" for i in range(257))
    assert_refused_without_effect(
        provider, upload_head(provider, ROWS, class_names=names), 422, "invalid_jsonl", "257 classes", "256"
    )


def test_duplicate_class_names_are_422(provider: Any) -> None:
    assert_refused_without_effect(
        provider, upload_head(provider, ROWS, class_names="neg,neg"), 422, "invalid_jsonl", "duplicate", "neg"
    )


def test_empty_texts_are_422(provider: Any) -> None:
    rows = [*ROWS, {"text": "  ", "label": 1}]
    assert_refused_without_effect(provider, upload_head(provider, rows), 422, "invalid_jsonl", "line 4", "empty")
    corpus = {"name": "hardening-empty", "texts": ["a passage", ""]}
    assert_refused_without_effect(
        provider,
        lambda: kept_alive(provider.admin.post("/v1/admin/corpora", json=corpus)),
        422,
        "invalid_corpus",
        "empty",
    )


def test_deeply_nested_jsonl_is_422(provider: Any) -> None:
    """20,000 nested arrays once hit Python's recursion limit: a RecursionError, a plain 500."""
    deep = b'{"text": "a", "label": ' + b"[" * 20000 + b"]" * 20000 + b"}"
    body = b'{"text": "good", "label": 0}\n' + deep
    assert_refused_without_effect(provider, upload_head(provider, body), 422, "invalid_jsonl", "line 2", "nested")


@pytest.mark.parametrize("bad", BAD_IDS)
def test_unsafe_ids_are_refused_for_heads_and_corpora(provider: Any, bad: str) -> None:
    head = {"name": bad, "dataset": "sst2", "max_examples": 20}
    corpus = {"name": bad, "texts": ["one passage", "another passage"]}
    for send in (
        lambda: kept_alive(provider.admin.post("/v1/admin/heads", json=head)),
        lambda: kept_alive(provider.admin.post("/v1/admin/corpora", json=corpus)),
        lambda: kept_alive(provider.admin.post("/v1/admin/heads/upload", params={"name": bad}, content=b"{}")),
    ):
        assert_refused_without_effect(provider, send, 422, "invalid_request", "name")


# --------------------------------------------------------------------------- provider: keys and auth


def test_trailing_bytes_after_a_public_key_are_422(provider: Any) -> None:
    """One key, one fingerprint: a key blob is exactly one SEAL object (the header's declared size
    must equal the blob's length), so appended bytes cannot register the same key twice."""
    keys = ClientKeys.generate(PSET)
    for tail in (b"\0", b"x" * 64):
        challenge = provider.http.post("/v1/keys/challenges").json()
        header = KeyRegistrationHeader(
            client_name="pytest-hardening",
            purpose=KeyPurpose.inference,
            parameter_set=PSET,
            galois_elements=[],
            challenge_id=challenge["challenge_id"],
        )
        blob = keys.public_key_bytes(bytes.fromhex(challenge["seed"])) + tail
        body = encode_frame(header, [blob])
        assert_refused_without_effect(
            provider,
            lambda body=body: kept_alive(provider.http.post("/v1/keys", content=body, headers=FRAME)),
            422,
            "invalid_public_key",
            f"{len(blob)}",
        )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive_on_the_provider(
    provider: Any, admin_headers: dict[str, str], scheme: str
) -> None:
    token = admin_headers["Authorization"].partition(" ")[2]
    resp = provider.http.get("/v1/admin/heads", headers={"Authorization": f"{scheme} {token}"})
    assert resp.status_code == 200, resp.text
    wrong = provider.http.get("/v1/admin/heads", headers={"Authorization": f"{scheme} not-the-token"})
    assert_api_error(wrong, 401, "unauthorized", "wrong")


# --------------------------------------------------------------------------- provider: sessions


STRIDE_BITS = 7  # 128 samples per ciphertext: the 400-text corpus at feature_dim 64 takes 4 ciphertexts


@pytest.fixture(scope="module")
def alignment_upload(provider: Any) -> Iterator[tuple[ProviderClient, str, list[bytes]]]:
    """A registered alignment key and the 4 ciphertexts of a session for it."""
    keys = ClientKeys.generate(PSET)
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as pc:
        info = register_seeded(
            pc,
            keys,
            KeyRegistrationHeader(
                client_name="pytest-hardening",
                purpose=KeyPurpose.alignment,
                parameter_set=PSET,
                galois_elements=trace_galois_elements(keys.he.n, STRIDE_BITS),
            ),
            STRIDE_BITS,
        )
        layout = CrossCovarianceLayout(n=keys.he.n, feature_dim=64, num_samples=400, stride_bits=STRIDE_BITS)
        x = np.hstack([np.random.default_rng(7).uniform(-1, 1, size=(400, 63)), np.ones((400, 1))])
        blobs = encrypt_alignment_data(keys, x, layout, 0, layout.num_ciphertexts)
        try:
            yield pc, info.key_id, blobs
        finally:
            pc.revoke_key(info.key_id)


def test_deleting_a_session_during_its_chunk_upload_leaves_no_chunks(
    provider: Any, alignment_upload: tuple[ProviderClient, str, list[bytes]]
) -> None:
    """A DELETE racing a chunk upload once made the upload a plain 500 and left chunk files behind.
    Whichever wins, the upload answers 200 (stored before the delete) or 404 (the session is gone),
    the delete answers 204, and no ciphertext of the session stays on disk."""
    pc, key_id, blobs = alignment_upload
    sha = pc.corpus("wiki").sha256
    layout_bits = CrossCovarianceLayout(8192, 64, 400, STRIDE_BITS).data_scale_bits
    frame = encode_frame(AlignmentChunkHeader(start=0, count=len(blobs), data_scale_bits=layout_bits), blobs)
    sessions_dir = Path(provider.data_dir) / "sessions"
    outcomes = []
    for _ in range(4):
        session = pc.create_alignment(
            AlignmentCreate(head_id="sst2", corpus_id="wiki", corpus_sha256=sha, key_id=key_id, feature_dim=64)
        )
        sid = session.session_id
        sent = threading.Event()
        answers: dict[str, httpx.Response] = {}

        def upload(sid: str = sid, sent: threading.Event = sent, answers: dict[str, httpx.Response] = answers) -> None:
            with https_client(
                provider.url, provider.ca, headers={"Authorization": f"Bearer {provider.api_key}"}
            ) as http:
                sent.set()
                answers["upload"] = http.put(f"/v1/alignments/{sid}/chunks", content=frame, headers=FRAME)

        worker = threading.Thread(target=upload)
        worker.start()
        assert sent.wait(60)
        deleted = kept_alive(provider.http.delete(f"/v1/alignments/{sid}"))
        worker.join(300)
        assert not worker.is_alive()
        assert deleted.status_code == 204, deleted.text
        up = kept_alive(answers["upload"])
        if up.status_code != 200:
            assert_api_error(up, 404, "unknown_alignment_session", sid)
        outcomes.append(up.status_code)
        assert not (sessions_dir / sid).exists(), f"chunks of deleted session {sid} remain: {outcomes}"
        assert_api_error(provider.http.get(f"/v1/alignments/{sid}"), 404, "unknown_alignment_session", sid)


# --------------------------------------------------------------------------- provider: private files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provider_files_are_private(provider: Any) -> None:
    """Head weights, keys and ciphertexts are the provider's secrets: 0700 folders, 0600 files."""
    data = Path(provider.data_dir)
    assert mode(data) == 0o700
    for name in ("provider.db", "provider.db-wal", "provider.db-shm"):
        if (data / name).exists():
            assert mode(data / name) == 0o600, name
    blobs = data / "blobs"
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert any(p.suffix == ".npy" for p in files), "the session's head weights should be stored as blobs"
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    folders = [blobs, *(p for p in blobs.rglob("*") if p.is_dir())]
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}


# --------------------------------------------------------------------------- the client agent


@pytest.fixture(scope="module")
def agent(client_agent_factory: Any) -> Iterator[Any]:
    agent = client_agent_factory("client-agent-hardening", HELIX_CLIENT_CLIENT_NAME="pytest-hardening-agent")
    try:
        yield agent
    finally:
        agent.close()


def agent_files(agent: Any) -> dict[str, list[tuple[str, int]]]:
    return {d: files_snapshot(Path(agent.data_dir) / d) for d in ("keys", "maps")}


@pytest.mark.parametrize("bad", ["", *BAD_IDS])
def test_agent_refuses_unsafe_ids(provider: Any, agent: Any, bad: str) -> None:
    """An empty head id once made the provider answer 307 and the agent crash; "/" or ".." steered
    the agent's request to other provider paths. Ids are now checked before any provider call."""
    before = files_snapshot(Path(provider.data_dir) / "blobs"), agent_files(agent)
    for method, path, body, field in (
        ("POST", "/v1/classify", {"texts": ["x"], "head_id": bad}, "head_id"),
        ("POST", "/v1/classify", {"texts": ["x"], "head_id": "sst2", "map_id": bad}, "map_id"),
        ("POST", "/v1/alignments", {"head_id": bad, "corpus_id": "wiki"}, "head_id"),
        ("POST", "/v1/alignments", {"head_id": "sst2", "corpus_id": bad}, "corpus_id"),
    ):
        resp = kept_alive(agent.http.request(method, path, json=body))
        assert_api_error(resp, 422, "invalid_request", field)
    assert agent.http.get("/v1/alignments").json() == []
    assert (files_snapshot(Path(provider.data_dir) / "blobs"), agent_files(agent)) == before


def test_agent_refuses_a_300_char_map_id(agent: Any) -> None:
    long_id = "m_" + "a" * 298
    assert_api_error(kept_alive(agent.http.get(f"/v1/maps/{long_id}")), 422, "invalid_request", "map_id")
    assert_api_error(kept_alive(agent.http.get(f"/v1/alignments/{long_id}")), 422, "invalid_request", "job_id")
    body = {"texts": ["x"], "head_id": "sst2", "map_id": long_id}
    assert_api_error(kept_alive(agent.http.post("/v1/classify", json=body)), 422, "invalid_request", "map_id")


def test_provider_down_is_503_naming_the_provider(client_agent_factory: Any) -> None:
    down = f"https://127.0.0.1:{free_port()}"
    agent = client_agent_factory(
        "client-agent-no-provider", HELIX_CLIENT_PROVIDER_URL=down, HELIX_CLIENT_PROVIDER_RETRY_SECONDS="1"
    )
    try:
        for method, path, body in (
            ("POST", "/v1/classify", {"texts": ["x"], "head_id": "sst2"}),
            ("POST", "/v1/alignments", {"head_id": "sst2", "corpus_id": "wiki"}),
        ):
            resp = kept_alive(agent.http.request(method, path, json=body))
            assert_api_error(resp, 503, "provider_unavailable", down, "unavailable")
            assert resp.headers["retry-after"] == "1"
        assert agent.http.get("/v1/alignments").json() == []
    finally:
        agent.close()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive_on_the_agent(client_agent_factory: Any, scheme: str) -> None:
    token = "pytest-agent-token-7d1e"
    agent = client_agent_factory(f"client-agent-token-{scheme}", HELIX_CLIENT_API_TOKEN=token)
    try:
        assert agent.http.get("/v1/maps", headers={"Authorization": f"{scheme} {token}"}).status_code == 200
        wrong = agent.http.get("/v1/maps", headers={"Authorization": f"{scheme} nope"})
        assert_api_error(wrong, 401, "unauthorized", "token")
        assert_api_error(agent.http.get("/v1/maps"), 401, "unauthorized", "token")
    finally:
        agent.close()


def test_unreadable_key_metadata_is_ignored_and_logged(client_agent_factory: Any) -> None:
    """An empty or corrupt key metadata file (a crash while an older version wrote it in place) once
    stopped the agent at start-up; it is now skipped, with a line in the log saying so."""
    agent = client_agent_factory("client-agent-bad-meta")
    try:
        agent.service.stop()
        keys_dir = Path(agent.data_dir) / "keys"
        (keys_dir / "k_empty.json").write_text("")
        (keys_dir / "k_corrupt.json").write_text('{"key_id": "k_corrupt", "purpose": ')
        (keys_dir / "k_wrong.json").write_text('{"key_id": "k_wrong", "unexpected": 1}')
        agent.service.start()
        assert agent.http.get("/healthz").status_code == 200
        assert agent.http.get("/v1/alignments").json() == []
        log = agent.service.log_text()
        for name in ("k_empty.json", "k_corrupt.json", "k_wrong.json"):
            assert f"ignoring unreadable key metadata {name}" in log, log[-3000:]
    finally:
        agent.close()


def test_agent_files_are_private_and_written_whole(provider: Any, agent: Any, tmp_path: Path) -> None:
    """Agent data dir 0700; key metadata and maps 0600, written by temp file + rename (no temp file
    is left behind). The stores are the agent's own classes, run here against the real provider."""
    assert mode(Path(agent.data_dir)) == 0o700
    store = KeyStore(tmp_path / "keys")
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as pc:
        stored, _ = store.register(pc, "pytest-hardening", KeyPurpose.inference, PSET)
        pc.revoke_key(stored.key_id)
    assert mode(tmp_path / "keys") == 0o700
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(
        [f"{stored.key_id}.json", f"{stored.key_id}.sk"]
    )
    assert {p.name: mode(p) for p in (tmp_path / "keys").iterdir()} == {
        f"{stored.key_id}.json": 0o600,
        f"{stored.key_id}.sk": 0o600,
    }
    maps = MapStore(tmp_path / "maps")
    meta = {
        "provider_url": provider.url,
        "head_id": "sst2",
        "corpus_id": "wiki",
        "corpus_sha256": "0" * 64,
        "client_model_id": "m",
        "provider_model_id": "p",
        "parameter_set": PSET,
        "ridge_lambda": 1e-4,
        "num_samples": 4,
        "include_head_texts": False,
        "created_at": "2026-01-01T00:00:00+00:00",
        "alignment_seconds": 0.0,
        "bytes_sent": 0,
        "bytes_received": 0,
    }
    saved = maps.save(meta, AffineMap(np.zeros((3, 2)), np.zeros(2)))
    folder = tmp_path / "maps" / saved.meta.map_id
    assert mode(tmp_path / "maps") == 0o700 and mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {n: 0o600 for n in ("weight.npy", "bias.npy", "meta.json")}
    assert [p.name for p in (tmp_path / "maps").iterdir()] == [saved.meta.map_id]
