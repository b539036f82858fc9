"""The alignment job manager: jobs run in threads, are bounded, and survive a restart on disk.

Real threads and a real folder; a job's work is a function the test controls with events, and the
test waits for a job by joining its thread (no sleeps)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client_agent.alignment import AlignmentProgress, ProgressFn
from client_agent.jobs import INTERRUPTED, AlignmentJob, JobManager, TooManyJobs

JOIN_S = 30.0


def join(job: AlignmentJob) -> None:
    """Wait until the job's thread has finished (and so has recorded its outcome)."""
    threads = [t for t in threading.enumerate() if t.name == f"align-{job.job_id}"]
    for t in threads:
        t.join(JOIN_S)
        assert not t.is_alive(), f"job {job.job_id} still running after {JOIN_S} s"


def finishing(map_id: str) -> Callable[[ProgressFn], str]:
    def work(progress: ProgressFn) -> str:
        progress(AlignmentProgress(phase="embedding"))
        progress(AlignmentProgress(phase="done", uploaded_ciphertexts=3, total_ciphertexts=3))
        return map_id

    return work


def failing(message: str) -> Callable[[ProgressFn], str]:
    def work(progress: ProgressFn) -> str:
        progress(AlignmentProgress(phase="uploading"))
        raise RuntimeError(message)

    return work


class Blocked:
    """Work that reports a phase, then waits until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, progress: ProgressFn) -> str:
        progress(AlignmentProgress(phase="computing", total_columns=4))
        self.started.set()
        assert self.release.wait(JOIN_S), "blocked job never released"
        return "m_released"


@pytest.fixture
def blocked() -> Iterator[Blocked]:
    b = Blocked()
    yield b
    b.release.set()  # never leave a thread waiting


def files(root: Path) -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in root.iterdir()}


def test_jobs_finish_or_fail_and_are_written_to_disk(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path, max_running=2, max_retained=10)
    ok = jobs.start("h", "c", finishing("m_1"))
    bad = jobs.start("h", "c", failing("the provider said no"))
    join(ok)
    join(bad)
    got_ok, got_bad = jobs.get(ok.job_id), jobs.get(bad.job_id)
    assert got_ok is not None and (got_ok.state, got_ok.map_id, got_ok.error) == ("done", "m_1", None)
    assert got_ok.progress.phase == "done" and got_ok.progress.uploaded_ciphertexts == 3
    assert got_bad is not None and (got_bad.state, got_bad.map_id) == ("failed", None)
    assert got_bad.error == "the provider said no"
    on_disk = files(tmp_path)
    assert set(on_disk) == {ok.job_id, bad.job_id}, "one file per job, no temporary files left"
    assert on_disk[ok.job_id]["state"] == "done" and on_disk[ok.job_id]["map_id"] == "m_1"
    assert on_disk[bad.job_id]["state"] == "failed"
    assert [j.job_id for j in jobs.list()] == [ok.job_id, bad.job_id]


def test_a_restart_keeps_finished_jobs_and_fails_running_ones(tmp_path: Path, blocked: Blocked) -> None:
    before = JobManager(tmp_path, max_running=2, max_retained=10)
    done = before.start("h", "c", finishing("m_kept"))
    join(done)
    failed = before.start("h", "c", failing("bad corpus"))
    join(failed)
    running = before.start("h2", "c2", blocked)
    assert blocked.started.wait(JOIN_S)

    after = JobManager(tmp_path, max_running=2, max_retained=10)  # a new process on the same data dir
    by_id = {j.job_id: j for j in after.list()}
    assert [j.job_id for j in after.list()] == [done.job_id, failed.job_id, running.job_id], "oldest first"
    assert (by_id[done.job_id].state, by_id[done.job_id].map_id) == ("done", "m_kept")
    assert (by_id[failed.job_id].state, by_id[failed.job_id].error) == ("failed", "bad corpus")
    interrupted = by_id[running.job_id]
    assert (interrupted.state, interrupted.map_id, interrupted.error) == ("failed", None, INTERRUPTED)
    assert "restart" in INTERRUPTED
    assert interrupted.progress.phase == "computing", "the last phase written is kept"
    assert (interrupted.head_id, interrupted.corpus_id, interrupted.created_at) == ("h2", "c2", running.created_at)
    assert files(tmp_path)[running.job_id]["state"] == "failed", "the interruption is written back"
    assert after.running() == 0


def test_no_more_than_max_running(tmp_path: Path, blocked: Blocked) -> None:
    jobs = JobManager(tmp_path, max_running=1, max_retained=10)
    first = jobs.start("h", "c", blocked)
    with pytest.raises(TooManyJobs, match="1 alignment"):
        jobs.check_capacity()
    with pytest.raises(TooManyJobs):
        jobs.start("h", "c", finishing("m_x"))
    assert [j.job_id for j in jobs.list()] == [first.job_id], "a refused job is not recorded"
    blocked.release.set()
    join(first)
    jobs.check_capacity()
    second = jobs.start("h", "c", finishing("m_2"))
    join(second)
    assert [j.state for j in jobs.list()] == ["done", "done"]


def test_oldest_finished_jobs_are_forgotten_first(tmp_path: Path, blocked: Blocked) -> None:
    jobs = JobManager(tmp_path, max_running=2, max_retained=3)
    running = jobs.start("h", "c", blocked)  # the oldest, but running: never forgotten
    finished = []
    for i in range(4):
        job = jobs.start("h", "c", finishing(f"m_{i}"))
        join(job)
        finished.append(job)
    kept = [j.job_id for j in jobs.list()]
    assert kept == [running.job_id, finished[2].job_id, finished[3].job_id]
    assert set(files(tmp_path)) == set(kept), "forgotten jobs' files are deleted"
    assert jobs.get(finished[0].job_id) is None
    blocked.release.set()
    join(running)
    assert JobManager(tmp_path, max_running=2, max_retained=2).list() == jobs.list()[1:], (
        "a smaller limit at start-up forgets the oldest finished jobs"
    )


def test_updates_after_close_are_not_recorded(tmp_path: Path, blocked: Blocked) -> None:
    """A job failing only because the agent is shutting down stays 'running' on disk, so the next
    start reports it as interrupted rather than as an ordinary failure."""
    jobs = JobManager(tmp_path, max_running=1, max_retained=10)
    job = jobs.start("h", "c", blocked)
    assert blocked.started.wait(JOIN_S)
    jobs.close()
    blocked.release.set()
    join(job)
    assert files(tmp_path)[job.job_id]["state"] == "running"
    assert JobManager(tmp_path, max_running=1, max_retained=10).list()[0].error == INTERRUPTED


def test_unreadable_job_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "j_000000000000.json").write_text("{not json")
    (tmp_path / ".j_000000000001.tmp").write_text("{}")
    jobs = JobManager(tmp_path, max_running=1, max_retained=10)
    assert jobs.list() == []
    assert not (tmp_path / ".j_000000000001.tmp").exists(), "a half-written file is cleaned up"
