"""The executor interface and its in-process implementation.

Why a setup step per worker: a shard function often needs something costly that does not change
between shards (an embedding model, a key pair, a client's Galois keys). `ShardTask.setup` makes it
once per worker (once in all for `LocalExecutor`), `ShardTask.run` uses it for each item. Both must
be picklable (module-level functions or `functools.partial` of them) for a Ray cluster; locally any
callable will do."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ShardTask(Generic[S, T, R]):
    """`run(setup(), item)` for each item; `setup()` once per worker."""

    setup: Callable[[], S]
    run: Callable[[S, T], R]


def tree_reduce(combine: Callable[[R, R], R], parts: Sequence[R]) -> R:
    """Pairwise rounds: (p0+p1) + (p2+p3) ..., log2(len) deep. With an associative and commutative
    `combine` the result does not depend on the order; the depth is what a cluster can parallelise."""
    if not parts:
        raise ValueError("nothing to reduce")
    level = list(parts)
    while len(level) > 1:
        nxt = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class ShardExecutor(Protocol):
    """Where shard functions run. `map` yields results in the order of the items and may run ahead
    by a bounded number of items (so a caller can stream results while later shards compute)."""

    @property
    def distributed(self) -> bool:
        """True if tasks run in other processes (they must then be picklable and self-contained)."""
        ...

    def map(self, task: ShardTask[Any, T, R], items: Iterable[T]) -> Iterator[R]: ...

    def map_reduce(self, task: ShardTask[Any, T, R], items: Iterable[T], combine: Callable[[R, R], R]) -> R: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Everything in the calling thread, lazily: the next item is computed when the caller asks for
    its result, exactly as a plain loop would (the path without a cluster)."""

    distributed = False

    def map(self, task: ShardTask[Any, T, R], items: Iterable[T]) -> Iterator[R]:
        state = task.setup()
        for item in items:
            yield task.run(state, item)

    def map_reduce(self, task: ShardTask[Any, T, R], items: Iterable[T], combine: Callable[[R, R], R]) -> R:
        return tree_reduce(combine, list(self.map(task, items)))

    def close(self) -> None:
        pass
