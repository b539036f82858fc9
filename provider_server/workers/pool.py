"""The pools of HE worker processes.

Why processes: SEAL is single-threaded and holds the GIL, so HE work in the server process would
stall every other request; a process pool uses all cores and keeps the event loop free.

Why two pools: an alignment's cross-covariance pieces take seconds to minutes each; in a shared pool
they occupied every worker and a classify waited behind them (p50 35 ms became 5.5 s). Classify gets
its own pool, so it never queues behind alignment work, and the alignment pool's workers run at a
lower scheduling priority (`nice`), so on a busy machine the CPU goes to classify first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from ..errors import Unavailable
from .jobs import Job, WarmUpJob
from .process import init_worker, run_job

R = TypeVar("R")


def _new_executor(workers: int, nice: int) -> ProcessPoolExecutor:
    # spawn, not fork: the server process may hold torch threads, which do not survive fork.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(nice,),
    )


class HePool:
    """Runs jobs in worker processes. A worker that dies (say, killed by the OOM killer) breaks the
    executor; it is rebuilt once and the job retried, and a second failure is a 503. `nice` is added
    to each worker's scheduling niceness (0 keeps the server's priority)."""

    def __init__(self, workers: int, nice: int = 0) -> None:
        self.workers = workers
        self.nice = nice
        self._executor = _new_executor(workers, nice)
        self._lock = threading.Lock()

    async def run(self, job: Job[R]) -> R:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self._executor
            try:
                return await loop.run_in_executor(executor, run_job, job)
            except BrokenProcessPool:
                with self._lock:
                    if self._executor is executor:  # another request may have rebuilt it already
                        executor.shutdown(wait=False, cancel_futures=True)
                        self._executor = _new_executor(self.workers, self.nice)
                if attempt == 2:
                    raise Unavailable("worker_failed", "an HE worker process died twice on this request") from None
        raise AssertionError("unreachable")

    def warm_up(self, parameter_sets: list[str]) -> None:
        """Start every worker and build its contexts (blocking; call it off the event loop)."""
        job = WarmUpJob(tuple(parameter_sets))
        futures = [self._executor.submit(run_job, job) for _ in range(self.workers)]
        for f in futures:
            f.result()

    def close(self) -> None:
        """Stop the workers now: a long alignment job must not outlive the server."""
        executor = self._executor
        processes = list(getattr(executor, "_processes", {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
