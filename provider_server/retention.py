"""Retention and garbage collection: what the provider stores only for a while, and the sweep that
removes it once that while is over.

Without it storage grew without bound (496 MB after 140 alignments): the Galois keys of every spent
alignment key, the ciphertexts of sessions a client abandoned, results nobody fetched, temporary
files of writes a crash cut short. One sweep removes, in this order:

- sessions that expired, done sessions whose result is older than the result TTL, and receiving or
  failed sessions with no activity (creation, a chunk, the computation's end) for the idle TTL or
  whose key is gone; a computing session is left alone while its replica renews its lease (one
  whose lease lapsed is first failed as interrupted, `services.compute_lease`);
- keys that are revoked, expired for longer than the expired-key retention, or single-use alignment
  keys no session uses any more, older than the idle TTL; their blobs go with them at once;
- blobs no record names, temporary files, and session folders without a session, once older than
  the orphan grace period (a blob is written before the record naming it, so a young one is spared).

Records go before files: a chunk upload racing a deletion finds no session and removes its own
files (`services.alignment`). The sweep runs periodically (`gc_interval_seconds`) and on demand
(`POST /v1/admin/gc`), one at a time per process. Replicas sharing the database and data directory
sweep independently, possibly at once: every removal is conditional (a record is deleted once, a
blob under the blob store's cross-process lock, a vanished file counts as removed by the other)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from shared_protocol.messages import AlignmentState, KeyPurpose

from .blobs import BlobStore
from .clock import utcnow
from .services.keys import CHALLENGE_RETENTION
from .session_files import SessionFiles
from .settings import ProviderSettings
from .store import SessionRecord, Store

log = logging.getLogger("helix.provider.retention")


@dataclass
class SweepReport:
    """What one sweep removed."""

    sessions: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    blobs: int = 0
    temp_files: int = 0
    session_folders: int = 0
    challenges: int = 0
    interrupted: int = 0  # computations whose replica stopped renewing their lease
    bytes_freed: int = 0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _tree_size(path: Path) -> int:
    """Bytes under `path`; files another replica removes meanwhile count as nothing."""
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except FileNotFoundError:
            continue
    return total


class Sweeper:
    """Removes what has outlived its retention; safe to call from several threads (one sweep at a time)."""

    def __init__(self, store: Store, blobs: BlobStore, settings: ProviderSettings) -> None:
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._files = SessionFiles(settings.data_dir / "sessions")
        self._lock = threading.Lock()

    def sweep(self, now: datetime | None = None) -> SweepReport:
        with self._lock:
            now = now or utcnow()
            report = SweepReport()
            report.challenges = self._store.prune_challenges(now - CHALLENGE_RETENTION)
            report.interrupted = self._store.interrupt_running_sessions(expired_before=now)
            released = self._sweep_sessions(now, report) + self._sweep_keys(now, report)
            self._sweep_blobs(now, released, report)
            self._sweep_session_folders(now, report)
            if report.interrupted:
                log.warning("%d alignment computations lost their replica (lease expired)", report.interrupted)
            if report.sessions or report.keys or report.blobs or report.temp_files or report.session_folders:
                log.info(
                    "swept %d sessions, %d keys, %d blobs, %d temporary files, %d session folders: %d bytes",
                    len(report.sessions),
                    len(report.keys),
                    report.blobs,
                    report.temp_files,
                    report.session_folders,
                    report.bytes_freed,
                )
            return report

    # --- records ------------------------------------------------------------------------------------
    def _last_activity(self, session: SessionRecord) -> datetime:
        """Creation, the last chunk stored (its folder's time) or the result written, whichever is latest."""
        times = [session.created_at.timestamp()]
        folder = _mtime(self._files.folder(session.session_id))
        if folder is not None:
            times.append(folder)
        if session.result_blob:
            result = _mtime(self._blobs.path(session.result_blob))
            if result is not None:
                times.append(result)
        return datetime.fromtimestamp(max(times), tz=UTC)

    def _session_expired(self, session: SessionRecord, now: datetime, usable_keys: set[str]) -> bool:
        s = self._settings
        if session.state == AlignmentState.computing:
            return False  # its computation reads the files; a lost lease fails it, then it ages like others
        if session.expires_at <= now:
            return True
        idle = now - self._last_activity(session)
        if session.state == AlignmentState.done:
            return idle >= timedelta(seconds=s.result_ttl_seconds)
        key_gone = not session.provider_held and session.key_id not in usable_keys  # provider-held: no key
        return idle >= timedelta(seconds=s.session_idle_ttl_seconds) or key_gone

    def _sweep_sessions(self, now: datetime, report: SweepReport) -> list[str]:
        usable = {k.key_id for k in self._store.all_keys() if not k.revoked and k.expires_at > now}
        released: list[str] = []
        for session in self._store.list_sessions():
            if not self._session_expired(session, now, usable):
                continue
            if not self._store.delete_session(session.session_id):
                continue  # deleted meanwhile by its client
            report.sessions.append(session.session_id)
            folder = self._files.folder(session.session_id)
            if folder.exists():
                report.bytes_freed += _tree_size(folder)
            self._files.remove(session.session_id)
            if session.result_blob:
                released.append(session.result_blob)
        return released

    def _sweep_keys(self, now: datetime, report: SweepReport) -> list[str]:
        s = self._settings
        sessions = self._store.list_sessions()
        in_use = {x.key_id for x in sessions}
        computing = {x.key_id for x in sessions if x.state == AlignmentState.computing}
        released: list[str] = []
        for key in self._store.all_keys():
            if key.key_id in computing:
                continue
            spent = (
                key.purpose == KeyPurpose.alignment
                and key.key_id not in in_use
                and now - key.created_at >= timedelta(seconds=s.session_idle_ttl_seconds)
            )
            long_expired = now - key.expires_at >= timedelta(seconds=s.expired_key_retention_seconds)
            if not (key.revoked or long_expired or spent):
                continue
            if self._store.delete_key(key.key_id):
                report.keys.append(key.key_id)
                released.extend(b for b in (key.public_key_blob, key.galois_keys_blob) if b)
        return released

    # --- files --------------------------------------------------------------------------------------
    def _referenced_blobs(self) -> set[str]:
        names: set[str] = set()
        for head in self._store.list_heads():
            names.update(b for b in (head.weights_blob, head.bias_blob, head.texts_embeddings_blob) if b)
        for corpus in self._store.list_corpora():
            names.update((corpus.texts_blob, corpus.embeddings_blob))
        for key in self._store.all_keys():
            names.update(b for b in (key.public_key_blob, key.galois_keys_blob) if b)
        names.update(x.result_blob for x in self._store.list_sessions() if x.result_blob)
        return names

    def _sweep_blobs(self, now: datetime, released: list[str], report: SweepReport) -> None:
        """Blobs of the records just removed go at once (no record names them: the referenced set is
        read after the removals); other unnamed blobs and temporary files once older than the grace."""
        referenced = self._referenced_blobs()
        for blob_id in released:
            if blob_id not in referenced:
                self._count(self._blobs.path(blob_id), self._blobs.remove_if_older(self._blobs.path(blob_id)), report)
        cutoff = now.timestamp() - self._settings.orphan_grace_seconds
        for path in self._blobs.files():
            if path.name not in referenced:
                self._count(path, self._blobs.remove_if_older(path, cutoff), report)

    @staticmethod
    def _count(path: Path, freed: int | None, report: SweepReport) -> None:
        if freed is None:
            return
        if path.name.endswith(".tmp"):
            report.temp_files += 1
        else:
            report.blobs += 1
        report.bytes_freed += freed

    def _sweep_session_folders(self, now: datetime, report: SweepReport) -> None:
        """Folders of sessions that no longer exist, and temporary files of chunk writes cut short."""
        root = self._files.root
        if not root.exists():
            return
        # Folders first, then sessions: a session's record is stored before its folder, so a folder
        # listed here whose session exists is in `live` (another replica may be creating both now).
        folders = [f for f in root.iterdir() if f.is_dir()]
        live = {x.session_id for x in self._store.list_sessions()}
        cutoff = now.timestamp() - self._settings.orphan_grace_seconds
        for folder in folders:
            if folder.name not in live:
                report.bytes_freed += _tree_size(folder)
                shutil.rmtree(folder, ignore_errors=True)
                report.session_folders += 1
                continue
            for tmp in folder.glob(".*.tmp"):
                try:
                    st = tmp.stat()
                    if st.st_mtime < cutoff:
                        tmp.unlink()
                        report.temp_files += 1
                        report.bytes_freed += st.st_size
                except FileNotFoundError:
                    continue


async def sweep_periodically(sweeper: Sweeper, interval_seconds: float) -> None:
    """Sweep every `interval_seconds` until cancelled (at shutdown); a failed sweep is logged and
    the next one tries again."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await run_in_threadpool(sweeper.sweep)
        except Exception:
            log.exception("garbage collection sweep failed")
