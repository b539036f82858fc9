"""What lives as long as the application: store, blobs, worker pools, embedder, background tasks and
the head-training jobs this server runs.

Created in the lifespan and reached through dependencies (no globals); services receive the parts
they need from it (`deps.py`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from helix_embeddings import CachedEmbedder, Embedder, load_embedder
from helix_shards import ShardExecutor, make_executor
from helix_web.readiness import writable_dir

from .blobs import BlobStore
from .clock import utcnow
from .private_files import private_dir
from .retention import Sweeper
from .services.training_jobs import TrainingJobs
from .settings import ProviderSettings
from .store import Store, open_store
from .tasks import BackgroundTasks
from .workers.pool import HePool


class LazyEmbedder:
    """The provider's private encoder f_A, loaded on first use (heavy), cached on disk."""

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = CachedEmbedder(
                    load_embedder(self._settings.encoder), self._settings.data_dir / "embedding-cache"
                )
            return self._embedder


@dataclass
class ProviderState:
    settings: ProviderSettings
    store: Store
    blobs: BlobStore
    pool: HePool  # classify
    alignment_pool: HePool  # chunk validation and cross-covariances
    embedder: LazyEmbedder
    sweeper: Sweeper
    tasks: BackgroundTasks
    jobs: TrainingJobs  # head trainings
    #: Where big alignments' shards run when a cluster is configured (`executor = ray`); local otherwise.
    shard_executor: ShardExecutor
    #: Set once the HE workers and the encoder are loaded (the lifespan's start-up).
    warmed: bool = False

    @classmethod
    def open(cls, settings: ProviderSettings) -> ProviderState:
        private_dir(settings.data_dir)
        store = open_store(settings.store_url)
        # Replicas share the store: only this replica's own computations (it restarted under the
        # same id) and those whose replica died are certainly not running; others' are left alone.
        store.interrupt_running_sessions(owner=settings.replica_id)
        store.interrupt_running_sessions(expired_before=utcnow())
        store.interrupt_running_jobs()
        blobs = BlobStore(settings.data_dir / "blobs")
        embedder = LazyEmbedder(settings)
        tasks = BackgroundTasks()
        return cls(
            settings=settings,
            store=store,
            blobs=blobs,
            sweeper=Sweeper(store, blobs, settings),
            pool=HePool(settings.workers),
            alignment_pool=HePool(settings.alignment_workers, nice=settings.alignment_worker_nice),
            embedder=embedder,
            tasks=tasks,
            jobs=TrainingJobs(store, blobs, embedder, settings, tasks),
            shard_executor=make_executor(settings.executor, address=settings.ray_address, workers=settings.ray_workers),
        )

    def warm_up(self) -> None:
        """Start both pools' workers at once (blocking; call it off the event loop)."""
        sets = self.settings.parameter_sets
        other = threading.Thread(target=self.alignment_pool.warm_up, args=(sets,), name="warm-up-alignment")
        other.start()
        self.pool.warm_up(sets)
        other.join()

    def readiness(self) -> list[str | None]:
        """The readiness checks: workers warmed up, database answering, data directory writable."""
        return [
            None if self.warmed else "the HE workers are still warming up",
            self._store_usable(),
            writable_dir(self.settings.data_dir),
        ]

    def _store_usable(self) -> str | None:
        try:
            self.store.get_head("readiness-probe")
        except Exception as exc:  # any failure of the database means: not ready
            return f"the database is not usable: {exc}"
        return None

    def close(self) -> None:
        self.jobs.close()
        self.tasks.cancel_all()
        self.pool.close()
        self.alignment_pool.close()
        self.shard_executor.close()
        # Computations this replica held stop with it: reported as interrupted now, so a client's next
        # POST .../compute runs them on another replica at once instead of after their lease.
        try:
            self.store.interrupt_running_sessions(owner=self.settings.replica_id)
        finally:
            self.store.close()
