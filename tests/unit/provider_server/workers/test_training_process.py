"""A head training's process (`workers.training_process`), with a small real encoder: it sends back the
trained head and its published texts' embeddings, exactly what the same training in this process gives;
killed at any moment it is gone (reaped) when `kill` returns, and its answer is a TrainingCrashed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from helix_embeddings import load_embedder
from provider_server.training import sample_texts, train_logistic_head
from provider_server.workers.training import TrainedArrays, TrainingWork
from provider_server.workers.training_process import TrainingCrashed, TrainingProcess

ENCODER = "wordllama?dim=64"
TEXTS = ("a fine film", "a dull book", "great acting", "boring plot", "lovely music", "awful ending")
LABELS = (1, 0, 1, 0, 1, 0)


def work(cache_dir: Path) -> TrainingWork:
    emb = load_embedder(ENCODER)
    return TrainingWork(
        texts=TEXTS,
        labels=LABELS,
        num_classes=2,
        regularization_c=1.0,
        seed=3,
        in_distribution_texts=2,
        encoder=ENCODER,
        model_id=emb.model_id,
        dim=emb.dim,
        cache_dir=str(cache_dir),
    )


def test_the_process_sends_back_what_the_training_computes(tmp_path: Path) -> None:
    job = work(tmp_path / "cache")

    async def run() -> TrainedArrays:
        process = TrainingProcess(job)
        process.start()
        try:
            return await asyncio.wait_for(process.result(), timeout=300)
        finally:
            process.kill()

    arrays = asyncio.run(run())
    x = load_embedder(ENCODER).embed(list(TEXTS)).astype(np.float64)
    expected = train_logistic_head(x, list(LABELS), 2, c=1.0, seed=3)
    assert isinstance(arrays, TrainedArrays)
    np.testing.assert_allclose(arrays.weight, expected.weight, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(arrays.bias, expected.bias, rtol=1e-6, atol=1e-9)
    assert arrays.texts == tuple(sample_texts(list(TEXTS), 2, 3))
    assert arrays.texts_embeddings is not None and arrays.texts_embeddings.shape == (2, job.dim)


def test_a_killed_process_is_gone_and_answers_crashed(tmp_path: Path) -> None:
    async def run() -> None:
        process = TrainingProcess(work(tmp_path / "cache"))
        pid = process.start()
        answer = process.result()
        assert Path(f"/proc/{pid}").exists()
        process.kill()
        assert not Path(f"/proc/{pid}").exists(), "killed but not reaped"
        with pytest.raises(TrainingCrashed, match="without a result"):
            await asyncio.wait_for(answer, timeout=30)

    asyncio.run(run())


def test_a_wrong_encoder_is_reported_not_used(tmp_path: Path) -> None:
    job = work(tmp_path / "cache")
    bad = TrainingWork(**{**job.__dict__, "dim": job.dim + 1})

    async def run() -> None:
        process = TrainingProcess(bad)
        process.start()
        try:
            with pytest.raises(TrainingCrashed, match="loads as"):
                await asyncio.wait_for(process.result(), timeout=300)
        finally:
            process.kill()

    asyncio.run(run())
