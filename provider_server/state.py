"""Per-application state, created in the lifespan and reached through dependencies (no globals)."""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from helix_embeddings import CachedEmbedder, Embedder, load_embedder

from . import he_worker
from .blobs import BlobStore
from .db import Repository
from .settings import ProviderSettings


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the server process may hold torch threads, which do not survive fork.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=he_worker.init_worker)


@dataclass
class ProviderState:
    settings: ProviderSettings
    repo: Repository
    blobs: BlobStore
    pool: ProcessPoolExecutor
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _embedder: Embedder | None = None
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: ProviderSettings) -> "ProviderState":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        repo = Repository(settings.sqlite_path)
        repo.interrupt_running_sessions()
        return cls(settings=settings, repo=repo, blobs=BlobStore(settings.data_dir / "blobs"), pool=_new_pool(settings.workers))

    async def run_he(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run HE work in the worker pool, off the event loop. If a worker died (say, killed by the
        OOM killer) the pool is rebuilt once and the job retried; a second failure is a 503."""
        from helix_web.errors import ApiError

        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self.pool
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                with self._pool_lock:
                    if self.pool is pool:  # another request may have rebuilt it already
                        pool.shutdown(wait=False, cancel_futures=True)
                        self.pool = _new_pool(self.settings.workers)
                if attempt == 2:
                    raise ApiError(503, "worker_failed", "an HE worker process died twice on this request") from None
        raise AssertionError("unreachable")

    def warm_up(self) -> None:
        futures = [self.pool.submit(he_worker.warm_up, self.settings.parameter_sets) for _ in range(self.settings.workers)]
        for f in futures:
            f.result()

    def embedder(self) -> Embedder:
        """The provider's private encoder f_A, loaded on first use (heavy), cached on disk."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = CachedEmbedder(load_embedder(self.settings.encoder), self.settings.data_dir / "embedding-cache")
            return self._embedder


    def close(self) -> None:
        """Stop the workers now: a long alignment job must not outlive the server."""
        processes = list(getattr(self.pool, "_processes", {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
        self.repo.close()
