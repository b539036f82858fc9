"""Alignment jobs: run in background threads, bounded, and kept on disk.

An alignment takes minutes; its caller polls the job. Jobs are limited in two ways: at most
`max_running` run at once (each holds an embedding matrix and a provider session), and at most
`max_retained` are remembered, the oldest finished ones forgotten first. Every job is one JSON file
under the jobs folder, replaced atomically on each change of state or phase, so a restarted agent
still answers for its jobs: finished ones as they ended, and ones that were running as failed,
since the thread that ran them is gone."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .alignment import AlignmentProgress, ProgressFn

log = logging.getLogger(__name__)

INTERRUPTED = (
    "interrupted by a restart of the client agent before it finished (its provider session and key are "
    "released); start a new alignment"
)

#: The job the current thread runs (set by JobManager._run), so its work can record what it opened.
_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("helix_alignment_job", default=None)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class AlignmentJob:
    job_id: str
    head_id: str
    corpus_id: str
    state: str = "running"  # running | done | failed
    progress: AlignmentProgress = field(default_factory=AlignmentProgress)
    map_id: str | None = None
    error: str | None = None
    created_at: str = field(default_factory=_now)
    #: The provider session the job has open, written as soon as it exists: a restarted agent deletes it.
    session_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlignmentJob:
        return cls(**{**data, "progress": AlignmentProgress(**data["progress"])})


class TooManyJobs(RuntimeError):
    """The limit of alignments running at once is reached."""


#: The work of a job: given a progress callback, produce the id of the stored map.
JobWork = Callable[[ProgressFn], str]


class JobManager:
    def __init__(self, root: Path, *, max_running: int, max_retained: int) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running
        self.max_retained = max_retained
        self._lock = threading.Lock()
        self._jobs: dict[str, AlignmentJob] = {}
        self._closed = False
        #: Provider sessions of jobs the previous process did not finish, to be deleted (`state`).
        self.abandoned_sessions: list[str] = []
        self._load()

    def close(self) -> None:
        """Stop recording: a job thread that fails only because the agent is shutting down (its provider
        connection closed under it) must not be recorded as an ordinary failure; its file keeps saying
        "running", and the next start reports it as interrupted."""
        with self._lock:
            self._closed = True

    # --- persistence --------------------------------------------------------------------------------
    def _path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def _write(self, job: AlignmentJob) -> None:
        """Write the job's file so that it is complete or absent (a temporary file, then a rename)."""
        tmp = self.root / f".{job.job_id}.tmp"
        tmp.write_text(json.dumps(asdict(job)))
        os.replace(tmp, self._path(job.job_id))

    def _load(self) -> None:
        jobs = []
        for path in self.root.glob("j_*.json"):
            try:
                jobs.append(AlignmentJob.from_json(json.loads(path.read_text())))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("ignoring unreadable alignment job file %s: %s", path, exc)
        for job in sorted(jobs, key=lambda j: j.created_at):
            if not job.finished:  # its thread died with the previous process
                if job.session_id:
                    self.abandoned_sessions.append(job.session_id)
                job = replace(job, state="failed", error=INTERRUPTED, session_id=None)
                self._write(job)
            self._jobs[job.job_id] = job
        for tmp in self.root.glob(".j_*.tmp"):  # a write cut short by the end of the previous process
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._evict()

    # --- the jobs -----------------------------------------------------------------------------------
    def get(self, job_id: str) -> AlignmentJob | None:
        return self._jobs.get(job_id)

    def list(self) -> list[AlignmentJob]:
        """Every retained job, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def running(self) -> int:
        return sum(1 for j in self.list() if not j.finished)

    def check_capacity(self) -> None:
        """Refuse early (before any provider traffic) when no job could start now."""
        if self.running() >= self.max_running:
            raise TooManyJobs(f"{self.max_running} alignment(s) already running; wait for one to finish")

    def start(self, head_id: str, corpus_id: str, work: JobWork) -> AlignmentJob:
        """Record a new job and run `work` for it in a background thread."""
        with self._lock:
            if sum(1 for j in self._jobs.values() if not j.finished) >= self.max_running:
                raise TooManyJobs(f"{self.max_running} alignment(s) already running; wait for one to finish")
            job = AlignmentJob(job_id="j_" + secrets.token_hex(6), head_id=head_id, corpus_id=corpus_id)
            self._jobs[job.job_id] = job
            self._write(job)
            self._evict()
        # The job's provider calls carry the request id of the call that started it (a context variable).
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(self._run, job.job_id, work), name=f"align-{job.job_id}", daemon=True
        ).start()
        return job

    def record_session(self, session_id: str) -> None:
        """Write down, before anything else happens, the provider session the current job opened."""
        job_id = _current_job.get()
        if job_id is None:
            return
        with self._lock:
            old = self._jobs.get(job_id)
            if old is None or self._closed:
                return
            job = replace(old, session_id=session_id)
            self._jobs[job_id] = job
            self._write(job)

    def _run(self, job_id: str, work: JobWork) -> None:
        _current_job.set(job_id)

        def on_progress(p: AlignmentProgress) -> None:
            self._update(job_id, progress=p)

        try:
            map_id = work(on_progress)
        except Exception as exc:  # reported through the job, not lost in a thread
            self._update(job_id, state="failed", error=str(exc) or type(exc).__name__)
        else:
            self._update(job_id, state="done", map_id=map_id)

    def _update(self, job_id: str, **changes: Any) -> None:
        """Apply changes to a job; its file is rewritten when its state or phase changes (per-chunk
        counters are kept in memory only: after a restart a running job is failed anyway)."""
        with self._lock:
            old = self._jobs.get(job_id)
            if old is None or self._closed:
                return
            job = replace(old, **changes)
            self._jobs[job_id] = job
            if job.state != old.state or job.progress.phase != old.progress.phase:
                self._write(job)
                if job.finished:
                    self._evict()

    def _evict(self) -> None:
        """Forget the oldest finished jobs beyond the retention limit (running jobs are never forgotten).
        The caller holds the lock."""
        excess = len(self._jobs) - self.max_retained
        if excess <= 0:
            return
        finished = [j for j in self._jobs.values() if j.finished]  # insertion order: oldest first
        for job in finished[:excess]:
            del self._jobs[job.job_id]
            self._path(job.job_id).unlink(missing_ok=True)
