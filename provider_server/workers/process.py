"""What runs inside an HE worker process, besides the jobs themselves."""

from __future__ import annotations

import os
import threading
import time
from typing import TypeVar

from .jobs import Job
from .refill import REFILLER

R = TypeVar("R")


def init_worker(nice: int = 0) -> None:
    """Lower this worker's priority by `nice` (alignment workers yield the CPU to classify workers),
    and end it if the server process goes away, so a killed server never leaves workers computing
    for nobody. (A watchdog on the parent pid, not PR_SET_PDEATHSIG: that signal fires when the
    *thread* that forked the worker exits, and pools spawn workers from passing threads.)"""
    if nice > 0:
        os.nice(nice)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="helix-parent-watchdog", daemon=True).start()


def run_job(job: Job[R]) -> R:
    """Entry point in the worker (a module-level function, so the pool can pickle a reference)."""
    with REFILLER.job():
        return job.run()
