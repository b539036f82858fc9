"""What a head training's own process runs: wait for the embedded training data, fit the head, send
the arrays back.

Why a process of its own (not a thread of the server): a process can be killed at any moment, so a
training stops at once when it is cancelled or runs past its timeout, and it writes nothing the server
would have to clean up: the server stores blobs and the head only from the arrays this process sends.

Why the server embeds the texts and this process only fits: the server's encoder is loaded already.
Loading it again here cost ~5.7 s per training on a quiet 2-core machine (torch, then the weights),
against ~1.1 s to embed 400 texts and ~0.01 s to fit them, and many times more on a loaded machine.
The server embeds in chunks and stops between two of them when the job is cancelled or times out
(`services.training_jobs`); this process is started first, so it exists (and can be killed) for the
whole job, and its imports overlap the embedding."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from ..training import train_logistic_head
from .watchdog import exit_with_parent


@dataclass(frozen=True)
class FitWork:
    """The embedded training data and the knobs (picklable arrays and small values)."""

    x: np.ndarray  # (n, dim) float32, as the encoder gives it
    labels: tuple[int, ...]
    num_classes: int
    regularization_c: float
    seed: int


@dataclass(frozen=True)
class FittedHead:
    """What a training process sends back."""

    weight: np.ndarray  # (dim, k)
    bias: np.ndarray  # (k,)
    train_accuracy: float


def fit(work: FitWork) -> FittedHead:
    x = np.asarray(work.x).astype(np.float64)
    trained = train_logistic_head(x, list(work.labels), work.num_classes, c=work.regularization_c, seed=work.seed)
    return FittedHead(trained.weight, trained.bias, trained.train_accuracy)


def run_training(channel: Connection) -> None:
    """Entry point of a training process: receive a FitWork on `channel`, answer ("ok", FittedHead) or
    ("error", sentence). The server closing the channel before sending ends the process."""
    exit_with_parent()
    try:
        work = channel.recv()
    except EOFError:
        return
    try:
        message: tuple[str, object] = ("ok", fit(work))
    except Exception as exc:  # any failure is reported to the server, which fails the job with it
        message = ("error", f"{type(exc).__name__}: {exc}")
    channel.send(message)
    channel.close()
