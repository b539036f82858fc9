"""The idle-time reserve of encryptions of zero: filled while no job runs, paused during jobs, each
encryption handed out once."""

from __future__ import annotations

import time

import numpy as np

from helix_he.keys import ClientKeys, Rerandomizer
from provider_server.workers.refill import Refiller


def wait_for(predicate, deadline_s: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_the_reserve_fills_while_idle_and_every_encryption_is_used_once() -> None:
    keys = ClientKeys.generate("ckks-n4096-q47")
    rr = Rerandomizer(keys.he, keys.public_key(), reserve=3)
    refiller = Refiller()
    with refiller.job():
        refiller.touch(rr)
        # While a job runs the thread makes nothing (it is woken only when the job ends).
        assert rr.prepared == 0
    assert wait_for(lambda: rr.prepared == 3)
    with refiller.job():  # as a worker runs a job: the thread is woken when it ends
        refiller.touch(rr)
        taken = rr.fresh_zeros(5)  # three prepared, two made on the spot
    assert len({id(z) for z in taken}) == 5
    assert len({z.p0u.tobytes() for z in taken}) == 5  # independent randomness, none repeated
    assert wait_for(lambda: rr.prepared == 3)  # refilled again once idle
    assert not any(np.array_equal(z.c1, taken[0].c1) for z in rr.fresh_zeros(3))


def test_without_a_reserve_nothing_is_prepared() -> None:
    keys = ClientKeys.generate("ckks-n4096-q47")
    rr = Rerandomizer(keys.he, keys.public_key())
    Refiller().touch(rr)
    assert rr.prepared == 0 and len(rr.fresh_zeros(2)) == 2
