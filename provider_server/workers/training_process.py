"""The server's handle on one head training's process (`workers.training`): start it, send it the
embedded data, await what it sends back, kill it.

Spawned, not forked: the server holds torch threads, which do not survive fork. The answer is read
by a thread of its own, so awaiting it never holds a thread of the request pool for a whole training;
killing the process ends that read at once (the pipe reaches its end)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from typing import Any

from .training import FittedHead, FitWork, run_training

#: How long `kill` waits for the killed process to be reaped (SIGKILL cannot be refused).
REAP_SECONDS = 10.0


class TrainingCrashed(Exception):
    """The process ended without a result, or reported a failure (the message says which)."""


class TrainingProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._channel, child_end = ctx.Pipe(duplex=True)
        self._child_end = child_end
        self._process = ctx.Process(target=run_training, args=(child_end,), name="helix-head-training")
        self._process.daemon = True  # ended with the server even if nothing else does it
        self._lock = threading.Lock()  # the reading thread and `kill` both reap it

    def start(self) -> int:
        """Start the process (blocking for a moment; call it off the event loop); its pid."""
        self._process.start()
        self._child_end.close()  # the child's end closes when it dies, ending our read
        assert self._process.pid is not None
        return self._process.pid

    def send(self, work: FitWork) -> None:
        """Hand the process its data (blocking while it reads; call it off the event loop)."""
        try:
            self._channel.send(work)
        except OSError as exc:  # it died (killed, say): the answer says so
            raise TrainingCrashed(f"the training process is gone ({exc})") from None

    def result(self) -> asyncio.Future[FittedHead]:
        """A future of the process's answer (after `send`): its arrays, or TrainingCrashed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FittedHead] = loop.create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # a late failure is no error

        def settle(value: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        def read() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                status, payload = self._channel.recv()
                if status == "ok":
                    value = payload
                else:
                    error = TrainingCrashed(str(payload))
            except (EOFError, OSError):
                self._join()
                code = self._process.exitcode
                error = TrainingCrashed(f"the training process ended without a result (exit code {code})")
            finally:
                self._channel.close()
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
                loop.call_soon_threadsafe(settle, value, error)

        threading.Thread(target=read, name="helix-training-result", daemon=True).start()
        return future

    def kill(self) -> None:
        """SIGKILL the process (if it runs) and reap it, so its pid is gone when this returns."""
        if self._process.pid is None:
            return
        with self._lock:  # never signal a pid another thread has just reaped (and the system may reuse)
            if self._process.exitcode is None:
                self._process.kill()
            self._process.join(REAP_SECONDS)

    def reap(self) -> None:
        """Wait for a process that sent its answer to exit (it does right after sending)."""
        if self._process.pid is not None:
            self._join()

    def _join(self) -> None:
        with self._lock:
            self._process.join(REAP_SECONDS)
