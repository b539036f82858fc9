"""What runs inside an HE worker process, besides the jobs themselves."""

from __future__ import annotations

import os
from typing import TypeVar

from .jobs import Job
from .refill import REFILLER
from .watchdog import exit_with_parent

R = TypeVar("R")


def init_worker(nice: int = 0) -> None:
    """Lower this worker's priority by `nice` (alignment workers yield the CPU to classify workers),
    and end it if the server process goes away (`watchdog`)."""
    if nice > 0:
        os.nice(nice)
    exit_with_parent()


def run_job(job: Job[R]) -> R:
    """Entry point in the worker (a module-level function, so the pool can pickle a reference)."""
    with REFILLER.job():
        return job.run()
