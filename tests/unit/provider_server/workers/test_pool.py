"""HE worker jobs cross the process boundary: they and their errors pickle, and a bad ciphertext is
raised as CiphertextError (not returned as text) from inside a spawned worker."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from helix_he.context import CiphertextError
from provider_server.errors import Unavailable
from provider_server.workers.jobs import ValidateChunkJob
from provider_server.workers.pool import HePool

PSET = "ckks-n8192-q200"


def test_a_job_and_its_error_survive_pickling() -> None:
    job = ValidateChunkJob(parameter_set=PSET, ciphertexts=(b"\x00" * 8,), max_ciphertext_bytes=1 << 20, scale_bits=25)
    assert pickle.loads(pickle.dumps(job)) == job
    err = pickle.loads(pickle.dumps(CiphertextError("ciphertext 0: too short")))
    assert isinstance(err, CiphertextError) and str(err) == "ciphertext 0: too short"


def test_a_bad_ciphertext_is_raised_from_the_worker() -> None:
    pool = HePool(1)
    try:
        job = ValidateChunkJob(
            parameter_set=PSET, ciphertexts=(b"not a ciphertext",), max_ciphertext_bytes=1 << 20, scale_bits=25
        )
        with pytest.raises(CiphertextError):
            asyncio.run(pool.run(job))
    finally:
        pool.close()


def test_a_pool_whose_workers_keep_dying_answers_503_and_recovers() -> None:
    pool = HePool(1)
    try:
        with pytest.raises(Unavailable) as info:
            asyncio.run(pool.run(_Crash()))
        assert (info.value.status, info.value.code) == (503, "worker_failed")
        with pytest.raises(CiphertextError):  # the pool was rebuilt: the next job runs
            asyncio.run(
                pool.run(
                    ValidateChunkJob(
                        parameter_set=PSET, ciphertexts=(b"x",), max_ciphertext_bytes=1 << 20, scale_bits=25
                    )
                )
            )
    finally:
        pool.close()


class _Crash(ValidateChunkJob):
    """A job whose worker process dies, as under the OOM killer."""

    def __init__(self) -> None:
        super().__init__(parameter_set=PSET, ciphertexts=(), max_ciphertext_bytes=0, scale_bits=0)

    def run(self) -> None:
        import os

        os._exit(1)
