"""Encryptions of zero made while a worker waits for work, so a reply only adds one.

Why: re-randomising a reply needs a fresh encryption of zero under the client's key (two transforms
and three samplings of noise), about half of the provider's work per query. None of it depends on the
query, so a worker prepares a small reserve for the keys it served last while it has no job, and the
next query of such a key takes a prepared one (`helix_he.keys.Rerandomizer`). Each is used once.

The thread runs at a low scheduling priority (nice 10) and makes one encryption at a time, checking between
them that no job has started, so a request never waits behind more than one (~0.3 ms).
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Iterator

from helix_he.keys import Rerandomizer

#: Prepared encryptions of zero per key (each ~96 kB at N=4096, ~192 kB at N=8192).
RESERVE_PER_KEY = 8
#: Keys whose reserve is kept full: the ones served last.
RECENT_KEYS = 16


class Refiller:
    """Keeps the reserves of recently used keys full while the worker is idle."""

    def __init__(self) -> None:
        self._recent: collections.OrderedDict[int, Rerandomizer] = collections.OrderedDict()
        self._busy = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def touch(self, rr: Rerandomizer) -> None:
        """`rr` served a job: keep its reserve full from now on."""
        if rr.reserve <= 0:
            return
        with self._cv:
            self._recent[id(rr)] = rr
            self._recent.move_to_end(id(rr))
            while len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="helix-zero-refill", daemon=True)
                self._thread.start()

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        """Around every job: the refill thread pauses while one runs."""
        with self._cv:
            self._busy += 1
        try:
            yield
        finally:
            with self._cv:
                self._busy -= 1
                self._cv.notify_all()

    def _next(self) -> Rerandomizer:
        """Block until the worker is idle and some recent key's reserve is short."""
        with self._cv:
            while True:
                if self._busy == 0:
                    for rr in reversed(self._recent.values()):  # the key served last first
                        if rr.prepared < rr.reserve:
                            return rr
                self._cv.wait()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # Linux: a thread is a task with its own nice value
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            self._next().refill(batch=1, limit=1)


#: One per worker process.
REFILLER = Refiller()
