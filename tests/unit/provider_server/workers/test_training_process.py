"""A head training's process (`workers.training_process`): given embedded data it sends back exactly
the head the same fit gives in this process; killed at any moment (here: while it waits for its data)
it is gone, reaped, when `kill` returns, and its answer is a TrainingCrashed; a failing fit is reported
with its reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from provider_server.training import train_logistic_head
from provider_server.workers.training import FittedHead, FitWork
from provider_server.workers.training_process import TrainingCrashed, TrainingProcess

RNG = np.random.default_rng(5)
X = RNG.normal(size=(40, 8)).astype(np.float32)
LABELS = tuple(int(v) for v in (X[:, 0] > 0))


def work(labels: tuple[int, ...] = LABELS) -> FitWork:
    return FitWork(x=X, labels=labels, num_classes=2, regularization_c=1.0, seed=3)


async def fit_in_process(job: FitWork) -> FittedHead:
    process = TrainingProcess()
    process.start()
    try:
        await asyncio.get_running_loop().run_in_executor(None, process.send, job)
        return await asyncio.wait_for(process.result(), timeout=300)
    finally:
        process.kill()


def test_the_process_sends_back_what_the_fit_computes() -> None:
    fitted = asyncio.run(fit_in_process(work()))
    expected = train_logistic_head(X.astype(np.float64), list(LABELS), 2, c=1.0, seed=3)
    np.testing.assert_array_equal(fitted.weight, expected.weight)
    np.testing.assert_array_equal(fitted.bias, expected.bias)
    assert fitted.train_accuracy == expected.train_accuracy


def test_a_killed_process_is_gone_and_answers_crashed() -> None:
    async def run() -> None:
        process = TrainingProcess()
        pid = process.start()
        assert Path(f"/proc/{pid}").exists()
        process.kill()
        assert not Path(f"/proc/{pid}").exists(), "killed but not reaped"
        with pytest.raises(TrainingCrashed):
            await asyncio.get_running_loop().run_in_executor(None, process.send, work())
            await asyncio.wait_for(process.result(), timeout=30)

    asyncio.run(run())


def test_a_failing_fit_is_reported_with_its_reason() -> None:
    with pytest.raises(TrainingCrashed, match="ValueError"):
        asyncio.run(fit_in_process(work(labels=(0,) * len(LABELS))))  # one class: nothing to separate
