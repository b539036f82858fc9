"""Choosing an executor from settings: "local" (default) or "ray" (the `ray` extra)."""

from __future__ import annotations

from typing import Literal, get_args

from .executor import LocalExecutor, ShardExecutor

ExecutorKind = Literal["local", "ray"]
EXECUTOR_KINDS: tuple[str, ...] = get_args(ExecutorKind)


def make_executor(kind: str, *, address: str | None = None, workers: int = 2) -> ShardExecutor:
    """An executor of `kind`. Ray is imported here only when asked for, and it connects on first use
    (to `address`, e.g. "ray://head:10001" or "auto"; None starts a local cluster of `workers` CPUs)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ValueError(f"unknown executor {kind!r}; known: {list(EXECUTOR_KINDS)}")
