"""Replicas share one data directory: blob puts and the collector's removals exclude each other across
processes (a file lock on the blob directory), and sweeps of several replicas at once remove each
record and file once, without errors."""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import timedelta
from pathlib import Path

from provider_server.blobs import BlobStore
from provider_server.clock import utcnow
from provider_server.retention import Sweeper, SweepReport
from provider_server.session_files import SessionFiles
from provider_server.settings import ProviderSettings
from provider_server.store import SessionRecord, open_store
from shared_protocol.messages import AlignmentState


def test_a_removal_waits_for_another_process_holding_the_blob_directory(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    blob_id = blobs.put(b"weights")
    fd = os.open(blobs.root, os.O_RDONLY | os.O_DIRECTORY)  # what another replica's put holds
    fcntl.flock(fd, fcntl.LOCK_EX)
    freed: list[int | None] = []
    remover = threading.Thread(target=lambda: freed.append(blobs.remove_if_older(blobs.path(blob_id))))
    try:
        remover.start()
        remover.join(0.5)
        assert remover.is_alive() and not freed, "the blob was removed while another process held the lock"
        assert blobs.path(blob_id).exists()
    finally:
        os.close(fd)
    remover.join(10)
    assert freed == [len(b"weights")] and not blobs.path(blob_id).exists()


def _expired_session(sid: str, now_minus_hours: int) -> SessionRecord:
    created = utcnow() - timedelta(hours=now_minus_hours)
    return SessionRecord(
        session_id=sid,
        head_id="sst2",
        corpus_id="wiki",
        key_id="k_gone",
        parameter_set="ckks-n8192-q200",
        state=AlignmentState.receiving,
        num_samples=600,
        feature_dim=64,
        samples_per_ciphertext=64,
        num_ciphertexts=4,
        received=(0,),
        computed_columns=0,
        output_columns=384,
        error=None,
        created_at=created,
        expires_at=created + timedelta(hours=1),
        include_head_texts=False,
        client_model_id="m",
        data_scale_bits=25,
        result_blob=None,
    )


def test_replicas_sweeping_at_once_remove_everything_once(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    url = f"sqlite:///{data / 'provider.db'}"
    settings = ProviderSettings(data_dir=data, database_url=url, orphan_grace_seconds=0)
    stores = [open_store(url), open_store(url)]  # one connection per replica
    files = SessionFiles(data / "sessions")
    sids = [f"a_{i:02d}" for i in range(12)]
    for sid in sids:
        stores[0].add_session(_expired_session(sid, 3))
        files.write(sid, 0, [b"ciphertext"])
    orphans = [BlobStore(data / "blobs").put(f"orphan {i}".encode()) for i in range(12)]
    sweepers = [Sweeper(s, BlobStore(data / "blobs"), settings) for s in stores]
    barrier = threading.Barrier(2)
    reports: list[SweepReport] = []
    errors: list[BaseException] = []

    def sweep(sweeper: Sweeper) -> None:
        try:
            barrier.wait()
            reports.append(sweeper.sweep(utcnow() + timedelta(seconds=1)))
        except BaseException as exc:  # surfaced below: a failed sweep must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    removed = [sid for r in reports for sid in r.sessions]
    assert sorted(removed) == sids, "a session was removed twice, or not at all"
    assert sum(r.blobs for r in reports) == len(orphans)
    assert stores[0].list_sessions() == []
    assert not any((data / "sessions").iterdir())
    assert not any(p.is_file() for p in (data / "blobs").rglob("*"))
    for s in stores:
        s.close()
