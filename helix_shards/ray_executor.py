"""The executor on a Ray cluster (the optional `ray` extra; this module is imported only when a
setting selects Ray).

Each `map` starts `workers` actors that run `ShardTask.setup` once and then take items round robin,
at most `window` items in flight, so a caller streaming the results holds a bounded number of them.
`map_reduce` keeps the partial results in the cluster's object store and adds them in a tree of
remote tasks, so only the sum comes back. The actors are stopped when their map ends: a cluster's
CPUs are then free for the reduction and for the next job."""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .executor import ShardTask

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("helix.shards")


class _ShardWorker:
    """One Ray actor: the task's setup, made once, then items."""

    def __init__(self, setup: Callable[[], Any]) -> None:
        self._state = setup()

    def run(self, fn: Callable[[Any, Any], Any], item: Any) -> Any:
        return fn(self._state, item)


def _combine(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    return fn(a, b)


@functools.cache
def _remotes() -> tuple[Any, Any]:
    """The Ray actor class and remote function, made on first use (they need `ray` imported)."""
    import ray

    return ray.remote(num_cpus=1)(_ShardWorker), ray.remote(num_cpus=1)(_combine)


class RayExecutor:
    """Shard tasks on Ray. `address` None joins the cluster this process already started (tests), or
    starts a local one with `workers` CPUs; otherwise it connects there on first use."""

    distributed = True

    def __init__(self, *, address: str | None = None, workers: int = 2, window: int | None = None) -> None:
        if workers < 1:
            raise ValueError("a Ray executor needs at least one worker")
        self.address = address
        self.workers = workers
        self.window = window or 2 * workers
        self._lock = threading.Lock()
        self._started_here = False

    def _ray(self) -> Any:
        import ray

        with self._lock:
            if not ray.is_initialized():
                ray.init(
                    address=self.address,
                    num_cpus=None if self.address else self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._started_here = True
                log.info("shard work runs on the Ray cluster at %s", self.address or "started here")
        return ray

    def _submit_all(self, task: ShardTask[Any, T, R], items: Iterable[T]) -> Iterator[Any]:
        """Object refs of the results, in item order; at most `window` unfinished at any time."""
        ray = self._ray()
        worker_cls, _ = _remotes()
        actors = [worker_cls.remote(task.setup) for _ in range(self.workers)]
        log.info("%s on %d Ray workers", getattr(task.run, "__name__", "shard task"), len(actors))
        try:
            pending: deque[Any] = deque()
            for i, item in enumerate(items):
                while len(pending) >= self.window:
                    ray.wait([pending[0]], num_returns=1)
                    yield pending.popleft()
                pending.append(actors[i % len(actors)].run.remote(task.run, item))
            while pending:
                ray.wait([pending[0]], num_returns=1)
                yield pending.popleft()
        finally:
            for actor in actors:
                ray.kill(actor)

    def map(self, task: ShardTask[Any, T, R], items: Iterable[T]) -> Iterator[R]:
        ray = self._ray()
        refs = self._submit_all(task, items)
        try:
            for ref in refs:
                yield ray.get(ref)
        finally:
            refs.close()  # type: ignore[attr-defined]

    def map_reduce(self, task: ShardTask[Any, T, R], items: Iterable[T], combine: Callable[[R, R], R]) -> R:
        ray = self._ray()
        refs = list(self._submit_all(task, items))  # every shard done, actors stopped
        if not refs:
            raise ValueError("nothing to reduce")
        _, combine_remote = _remotes()
        while len(refs) > 1:
            nxt = [combine_remote.remote(combine, refs[i], refs[i + 1]) for i in range(0, len(refs) - 1, 2)]
            if len(refs) % 2:
                nxt.append(refs[-1])
            refs = nxt
        result: R = ray.get(refs[0])
        return result

    def close(self) -> None:
        """Leave the cluster if this executor joined or started it (not one the process set up itself)."""
        with self._lock:
            if self._started_here:
                import ray

                ray.shutdown()
                self._started_here = False
