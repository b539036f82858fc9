"""Per-application state, created in the lifespan and reached through dependencies (no globals)."""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from helix_embeddings import CachedEmbedder, Embedder, load_embedder

from . import he_worker
from .blobs import BlobStore
from .db import Repository
from .settings import ProviderSettings


@dataclass
class ProviderState:
    settings: ProviderSettings
    repo: Repository
    blobs: BlobStore
    pool: ProcessPoolExecutor
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _embedder: Embedder | None = None
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: ProviderSettings) -> "ProviderState":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        repo = Repository(settings.sqlite_path)
        repo.interrupt_running_sessions()
        # spawn, not fork: the server process may hold torch threads, which do not survive fork.
        pool = ProcessPoolExecutor(max_workers=settings.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=he_worker.init_worker)
        return cls(settings=settings, repo=repo, blobs=BlobStore(settings.data_dir / "blobs"), pool=pool)

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
