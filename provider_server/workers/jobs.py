"""Typed jobs for the HE worker processes: one frozen dataclass per kind of work.

A job carries file paths and small values (never the parent's objects) and is pickled to a spawned
worker, which calls `run()`. A bad client ciphertext raises `helix_he.context.CiphertextError`,
which crosses the process boundary intact; the caller turns it into a 4xx answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import tenseal.sealapi as seal

from helix_he.context import he_context
from helix_he.cross_covariance import encrypted_cross_covariance, validate_alignment_ciphertexts
from helix_he.linear_head import LOGITS, EncryptedLinearHead, encrypted_linear_head, encrypted_linear_head_batch
from helix_he.packing import CrossCovarianceLayout

from ..blobs import load_array
from . import cache

R = TypeVar("R", covariant=True)


class Job(ABC, Generic[R]):
    """Work for one worker process; `run` executes there and returns a picklable result."""

    @abstractmethod
    def run(self) -> R: ...


@dataclass(frozen=True)
class WarmUpJob(Job[int]):
    """Build contexts (and the native NTT) up front so the first request is not slow."""

    parameter_sets: tuple[str, ...]

    def run(self) -> int:
        for name in self.parameter_sets:
            he_context(name)
        return len(self.parameter_sets)


@dataclass(frozen=True)
class ClassifyJob(Job[list[list[bytes]]]):
    """Evaluate a head on serialized single-query ciphertexts, in the head's output mode: replies per
    query."""

    parameter_set: str
    weights_path: str
    bias_path: str
    noise_bits: int
    public_key_path: str
    queries: tuple[bytes, ...]
    max_ciphertext_bytes: int
    query_scale_bits: int
    output_mode: str = LOGITS

    def run(self) -> list[list[bytes]]:
        head = cache.prepared_head(
            self.parameter_set, self.weights_path, self.bias_path, self.noise_bits, self.output_mode
        )
        return encrypted_linear_head(
            head,
            self.queries,
            cache.rerandomizer(self.parameter_set, self.public_key_path),
            max_ciphertext_bytes=self.max_ciphertext_bytes,
            query_scale_bits=self.query_scale_bits,
        )


@dataclass(frozen=True)
class ClassifyBatchJob(Job[list[bytes]]):
    """Evaluate a head on a feature-major batch: one reply per class (logits mode only: a batch's
    replies are shared by its queries, so no per-query ranking factor exists)."""

    parameter_set: str
    weights_path: str
    bias_path: str
    noise_bits: int
    public_key_path: str
    features: tuple[bytes, ...]
    num_queries: int
    max_ciphertext_bytes: int
    query_scale_bits: int

    def run(self) -> list[bytes]:
        head = cache.prepared_head(self.parameter_set, self.weights_path, self.bias_path, self.noise_bits, LOGITS)
        if not isinstance(head, EncryptedLinearHead):  # the service never sends a ranking head here
            raise TypeError("feature-major batches are evaluated in logits mode only")
        return encrypted_linear_head_batch(
            head,
            self.features,
            self.num_queries,
            cache.rerandomizer(self.parameter_set, self.public_key_path),
            max_ciphertext_bytes=self.max_ciphertext_bytes,
            query_scale_bits=self.query_scale_bits,
        )


@dataclass(frozen=True)
class ValidateChunkJob(Job[None]):
    """Full SEAL validation of uploaded alignment ciphertexts (last level: the stride layout's depth
    needs no rescale), before they are stored."""

    parameter_set: str
    ciphertexts: tuple[bytes, ...]
    max_ciphertext_bytes: int
    scale_bits: int

    def run(self) -> None:
        validate_alignment_ciphertexts(
            he_context(self.parameter_set),
            list(self.ciphertexts),
            max_ciphertext_bytes=self.max_ciphertext_bytes,
            scale_bits=self.scale_bits,
        )


@dataclass(frozen=True)
class CrossCovarianceJob(Job[tuple[list[bytes], float]]):
    """Result ciphertexts [group_start, group_stop) of a session (each m columns of X^T Y), or of
    every fold's X_k^T Y_k (fold-major) when `folds` lists the folds' sample indices. Returns the
    serialized replies and their value scale."""

    parameter_set: str
    layout: CrossCovarianceLayout
    ciphertext_paths: tuple[str, ...]
    y_path: str
    group_start: int
    group_stop: int
    y_scale_bits: int
    max_ciphertext_bytes: int
    public_key_path: str
    galois_keys_path: str
    folds: tuple[np.ndarray, ...] | None = None

    def run(self) -> tuple[list[bytes], float]:
        he = he_context(self.parameter_set)
        y = load_array(Path(self.y_path))

        def load(c: int) -> seal.Ciphertext:
            return he.ciphertext_from_bytes(
                Path(self.ciphertext_paths[c]).read_bytes(), level=he.output_level, max_bytes=self.max_ciphertext_bytes
            )

        return encrypted_cross_covariance(
            he,
            self.layout,
            load,
            y,
            range(self.group_start, self.group_stop),
            cache.rerandomizer(self.parameter_set, self.public_key_path),
            cache.galois_keys(self.parameter_set, self.galois_keys_path),
            y_scale_bits=self.y_scale_bits,
            folds=self.folds,
        )
