"""Head trainings as jobs: recorded in the Store, run in a process of their own, stopped for good on
cancel or timeout.

Why jobs: a training embeds every labelled text with the provider's encoder, which takes minutes for
a large dataset; an HTTP request should not have to stay open for it, and a training that runs too
long (or that the admin no longer wants) must really stop, not keep a thread busy in the background.

- Every training is a job record (`Store.add_job`), whether the request waits for it (201, as before)
  or not (`Prefer: respond-async`: 202 and the job). At most `max_training_jobs` are queued or running
  at once (checked with the insert, in one transaction); more are refused with 429.
- A job starts its own process (`workers.training`), embeds the texts with the server's loaded encoder
  (in chunks of EMBED_CHUNK texts, looking for a stop signal between two), hands the embeddings to the
  process, which fits the head and sends back arrays; it writes nothing. Only when they arrive does the
  server write the head's blobs and store the head together with the job's success (`Store.complete_job`,
  one transaction). Stopping the job at any earlier moment (killing the process, ending the embedding
  at its next chunk) leaves no head record, no blob and no temporary file.
- The job's time limit (`head_training_timeout_seconds`) counts from its start; past it the job is
  stopped that way and fails with `training_timeout` (a waiting request gets 504).
- DELETE /v1/admin/jobs/{id} marks the record cancelled and kills the process; a runner also reads its
  record while it waits, so a job cancelled through another replica sharing the database stops too.
- A job whose server stops is failed at shutdown, or at the next start if the server was killed
  (`Store.interrupt_running_jobs`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool

from helix_embeddings import Embedder
from helix_web.errors import ApiError
from shared_protocol.messages import JobState

from ..blobs import BlobStore
from ..clock import utcnow
from ..errors import Conflict, Failed, TimedOut, TooManyRequests, Unavailable, Unknown
from ..settings import ProviderSettings
from ..store import JOB_INTERRUPTED_ERROR, HeadRecord, JobRecord, RecordExistsError, Store, TrainingReport
from ..tasks import BackgroundTasks
from ..training import sample_texts
from ..workers.training import FittedHead, FitWork
from ..workers.training_process import TrainingCrashed, TrainingProcess
from .catalog import HeadTraining, TrainingOutcome, head_exists

log = logging.getLogger("helix.provider.jobs")

HEAD_TRAINING = "head_training"
#: How often a running job's record is read back (a cancel through another replica stops it this late).
POLL_SECONDS = 0.5
#: Retry-After of a 429 when the running trainings fill every place.
RETRY_AFTER_SECONDS = 10
#: Texts embedded between two looks at the job's stop signal (~0.7 s of MiniLM on a quiet 2-core machine).
EMBED_CHUNK = 256

T = TypeVar("T")


class _Stopped(Exception):
    """The embedding saw the job's stop signal between two chunks."""


@dataclass(frozen=True)
class _Embedded:
    x: np.ndarray  # the training texts' embeddings, float32 as the encoder gives them
    texts: tuple[str, ...]  # the texts published with the head
    texts_embeddings: np.ndarray | None


@dataclass
class _Run:
    """A job this server runs: its process once started, and the outcome a waiting request awaits."""

    job_id: str
    done: asyncio.Future[TrainingOutcome]
    process: TrainingProcess | None = None
    cancelled: bool = False
    stop: threading.Event = field(default_factory=threading.Event)  # ends the embedding between chunks


def _cancelled(job_id: str) -> Conflict:
    return Conflict("job_cancelled", f"job {job_id!r} was cancelled; nothing was stored")


class TrainingJobs:
    """The head-training jobs of this server; long-lived (one per application, in its state)."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        embedder: Callable[[], Embedder],
        settings: ProviderSettings,
        tasks: BackgroundTasks,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._embedder = embedder
        self._settings = settings
        self._tasks = tasks
        self._runs: dict[str, _Run] = {}
        self._closed = False

    # -- what the routers call ---------------------------------------------------------------------
    def submit(self, training: HeadTraining) -> JobRecord:
        """Record a job for `training` and start it in the background; 429 when every place is taken."""
        if self._closed:
            raise Unavailable("shutting_down", "the provider is shutting down; train again once it is back")
        job = JobRecord(
            job_id="job_" + secrets.token_hex(8),
            kind=HEAD_TRAINING,
            state=JobState.queued,
            head_id=training.name,
            created_at=utcnow(),
            timeout_seconds=self._settings.head_training_timeout_seconds,
        )
        limit = self._settings.max_training_jobs
        if not self._store.add_job(job, limit):
            raise TooManyRequests(
                "too_many_trainings",
                f"{limit} head training(s) already queued or running (max_training_jobs); "
                "wait for one to finish or cancel one",
                RETRY_AFTER_SECONDS,
            )
        run = _Run(job.job_id, asyncio.get_running_loop().create_future())
        run.done.add_done_callback(lambda f: f.cancelled() or f.exception())  # an unawaited failure is no error
        self._runs[job.job_id] = run
        self._tasks.spawn(self._run(job, training, run))
        return job

    async def train(self, training: HeadTraining) -> TrainingOutcome:
        """Run `training` as a job and wait for it: the stored head, or the error the job failed with.
        A waiting request that goes away leaves the job running (the wait is shielded)."""
        job = self.submit(training)
        return await asyncio.shield(self._runs[job.job_id].done)

    def get(self, job_id: str) -> JobRecord:
        job = self._store.get_job(job_id)
        if job is None:
            raise Unknown("job", job_id)
        return job

    def list(self, limit: int) -> list[JobRecord]:
        return self._store.list_jobs(limit)

    def trained_head(self, job: JobRecord) -> HeadRecord | None:
        """The head a succeeded job stored, while it exists (not a later head of the same name)."""
        if job.state != JobState.succeeded or job.started_at is None:
            return None
        head = self._store.get_head(job.head_id)
        return head if head is not None and head.created_at >= job.started_at else None

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job: its record first, then its process (killed and reaped before
        this returns); 409 for a job that has finished, 404 for an unknown one."""
        result = self._store.cancel_job(job_id, utcnow(), "cancelled by the admin; nothing was stored")
        if result is None:
            raise Unknown("job", job_id)
        job, cancelled = result
        if not cancelled:
            raise Conflict("job_finished", f"job {job_id!r} has already {job.state.value}; nothing to cancel")
        run = self._runs.get(job_id)
        if run is not None:
            run.cancelled = True
            run.stop.set()
            if run.process is not None:
                await run_in_threadpool(run.process.kill)
        return job

    def close(self) -> None:
        """At shutdown: kill every training process and fail its job (a restart cannot resume it)."""
        self._closed = True
        for run in list(self._runs.values()):
            run.stop.set()
            if run.process is not None:
                run.process.kill()
            self._store.fail_job(run.job_id, utcnow(), "job_interrupted", JOB_INTERRUPTED_ERROR)

    # -- the job itself ------------------------------------------------------------------------------
    async def _run(self, job: JobRecord, training: HeadTraining, run: _Run) -> None:
        try:
            outcome = await self._train(job, training, run)
        except asyncio.CancelledError:  # the server is shutting down (`close` has recorded it)
            self._fail(run, Unavailable("job_interrupted", JOB_INTERRUPTED_ERROR), record=False)
            raise
        except _Stopped:  # likewise: `close` stopped the embedding
            self._fail(run, Unavailable("job_interrupted", JOB_INTERRUPTED_ERROR))
        except ApiError as exc:
            self._fail(run, exc)
        except Exception as exc:
            log.exception("a head training failed")
            self._fail(run, Failed("training_failed", f"the training failed: {exc}"))
        else:
            run.done.set_result(outcome)
        finally:
            run.stop.set()
            if run.process is not None:
                run.process.kill()  # ended already unless the job failed early; reaped at once either way
            self._runs.pop(job.job_id, None)

    def _fail(self, run: _Run, exc: ApiError, *, record: bool = True) -> None:
        if record and not self._closed:
            self._store.fail_job(run.job_id, utcnow(), exc.code, exc.detail)  # a cancelled job stays cancelled
        if not run.done.done():
            run.done.set_exception(exc)

    async def _train(self, job: JobRecord, training: HeadTraining, run: _Run) -> TrainingOutcome:
        if not self._store.start_job(job.job_id, utcnow()):
            raise _cancelled(job.job_id)  # cancelled while queued
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout_seconds
        process = TrainingProcess()
        run.process = process
        pid = await run_in_threadpool(process.start)  # first, so its imports overlap the embedding
        if run.cancelled:
            raise _cancelled(job.job_id)
        self._store.set_job_pid(job.job_id, pid)
        emb = await run_in_threadpool(self._embedder)  # loaded at start-up
        embedding = loop.run_in_executor(None, self._embed, training, emb, run.stop)
        embedded = await self._until(job, run, embedding, deadline)
        work = FitWork(
            x=embedded.x,
            labels=tuple(training.data.labels),
            num_classes=len(training.data.class_names),
            regularization_c=training.regularization_c,
            seed=training.seed,
        )
        await self._until(job, run, loop.run_in_executor(None, process.send, work), deadline)
        fitted = await self._until(job, run, process.result(), deadline)
        await run_in_threadpool(process.reap)
        return await run_in_threadpool(self._store_head, job, training, emb, embedded, fitted, t0)

    @staticmethod
    def _embed(training: HeadTraining, emb: Embedder, stop: threading.Event) -> _Embedded:
        """The training texts' embeddings, chunk by chunk, and the published texts' (cache hits)."""
        texts = training.data.texts
        parts: list[np.ndarray] = []
        for lo in range(0, len(texts), EMBED_CHUNK):
            if stop.is_set():
                raise _Stopped
            parts.append(emb.embed(texts[lo : lo + EMBED_CHUNK]))
        x = np.concatenate(parts) if parts else np.zeros((0, emb.dim), dtype=np.float32)
        published = sample_texts(texts, training.in_distribution_texts, training.seed)
        texts_emb = emb.embed(published).astype(np.float64) if published else None
        return _Embedded(x, tuple(published), texts_emb)

    async def _until(self, job: JobRecord, run: _Run, step: asyncio.Future[T], deadline: float) -> T:
        """The result of one step of the job. Meanwhile the job's record is read back every POLL_SECONDS;
        once the job is cancelled (here or through another replica) or past its deadline, the embedding
        is told to stop, the process is killed, and the job ends."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.wait({step}, timeout=max(0.0, min(POLL_SECONDS, deadline - loop.time())))
            if run.cancelled or self._record_cancelled(job.job_id):
                run.cancelled = True
                await self._stop(run, step)
                raise _cancelled(job.job_id)
            if step.done():
                try:
                    return step.result()
                except TrainingCrashed as exc:
                    raise Failed("training_failed", f"the training failed: {exc}") from None
            if loop.time() >= deadline:
                await self._stop(run, step)
                raise TimedOut(
                    "training_timeout",
                    f"the training of head {job.head_id!r} did not finish within {job.timeout_seconds:g} s "
                    "(head_training_timeout_seconds); it was stopped and nothing was stored",
                )

    @staticmethod
    async def _stop(run: _Run, step: asyncio.Future[T]) -> None:
        run.stop.set()
        step.add_done_callback(lambda f: f.cancelled() or f.exception())  # its late end is no error
        if run.process is not None:
            await run_in_threadpool(run.process.kill)

    def _record_cancelled(self, job_id: str) -> bool:
        job = self._store.get_job(job_id)
        return job is None or job.state == JobState.cancelled

    def _store_head(
        self,
        job: JobRecord,
        training: HeadTraining,
        emb: Embedder,
        embedded: _Embedded,
        fitted: FittedHead,
        t0: float,
    ) -> TrainingOutcome:
        """Blobs first, then the head and the job's success in one transaction. If the job was cancelled
        in between, no record names the blobs and the garbage collector removes them after its grace."""
        texts_emb = self._blobs.put_array(embedded.texts_embeddings) if embedded.texts_embeddings is not None else None
        head = HeadRecord(
            id=training.name,
            name=training.name,
            task=training.task,
            class_names=tuple(training.data.class_names),
            dim=int(fitted.weight.shape[0]),
            num_classes=len(training.data.class_names),
            created_at=utcnow(),
            weights_blob=self._blobs.put_array(np.asarray(fitted.weight, dtype=np.float64)),
            bias_blob=self._blobs.put_array(np.asarray(fitted.bias, dtype=np.float64)),
            texts=embedded.texts,
            texts_embeddings_blob=texts_emb,
            encoder_model_id=emb.model_id,
            report=TrainingReport(train_examples=len(training.data.texts), train_accuracy=fitted.train_accuracy),
            output_mode=training.output_mode,
            map_holder=training.map_holder,
        )
        seconds = time.perf_counter() - t0
        try:
            stored = self._store.complete_job(job.job_id, utcnow(), head, seconds)
        except RecordExistsError:
            raise head_exists(training.name) from None
        if not stored:
            raise _cancelled(job.job_id)
        return TrainingOutcome(head=head, seconds=seconds)
