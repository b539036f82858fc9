"""The client's shard work in an alignment: embedding the public texts and encrypting X, on the
agent's `helix_shards` executor.

Locally (the default) both run in the job's thread exactly as a plain loop would: the texts in one
shard, each chunk encrypted just before it is sent. On a Ray cluster the texts are embedded in
shards by a pool of workers that each load the embedder once, and the chunks are encrypted ahead by
workers that each load the key once, while the job thread sends them to the provider in order.

The encrypting workers hold the alignment's secret key: a Ray cluster used here must belong to the
client (docs/security.md)."""

from __future__ import annotations

import functools
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import tenseal.sealapi as seal

from helix_embeddings import Embedder, load_embedder
from helix_he.context import he_context, load_from_bytes, save_to_bytes
from helix_he.cross_covariance import encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.packing import CrossCovarianceLayout
from helix_shards import LocalExecutor, ShardExecutor, ShardTask


@dataclass(frozen=True)
class EncryptionInputs:
    """What every encrypting worker holds for one alignment: the key, X / scale and the packing."""

    keys: ClientKeys
    x_unit: np.ndarray
    layout: CrossCovarianceLayout


V = TypeVar("V")


def _given(value: V) -> V:
    return value


def _embed_shard(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embedder.embed(texts).astype(np.float64)


def _load_encryption_inputs(
    parameter_set: str, secret_key: bytes, x_unit: np.ndarray, layout: CrossCovarianceLayout
) -> EncryptionInputs:
    """The key pair from its secret (on a worker of the client's own cluster)."""
    he = he_context(parameter_set)
    sk = seal.SecretKey()
    load_from_bytes(sk, he.context, secret_key)
    return EncryptionInputs(ClientKeys(he, sk), x_unit, layout)


def _encrypt_chunk(inputs: EncryptionInputs, span: tuple[int, int]) -> list[bytes]:
    start, count = span
    return encrypt_alignment_data(inputs.keys, inputs.x_unit, inputs.layout, start, count)


@dataclass(frozen=True)
class AlignmentShards:
    """How an alignment's embedding and encryption are split and where they run.

    `embedder_spec` names the embedder a distributed worker loads (the agent's own setting);
    `embed_shard_texts` is the size of an embedding shard, 0 for all texts in one."""

    executor: ShardExecutor = field(default_factory=LocalExecutor)
    embedder_spec: str | None = None
    embed_shard_texts: int = 0

    def embed(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        """X for `texts`, in order, float64."""
        if self.executor.distributed:
            if self.embedder_spec is None:
                raise ValueError("a distributed executor needs the embedder's spec to load it on its workers")
            setup = functools.partial(load_embedder, self.embedder_spec)
        else:
            setup = functools.partial(_given, embedder)
        size = self.embed_shard_texts or max(1, len(texts))
        shards = [texts[i : i + size] for i in range(0, len(texts), size)]
        parts = list(self.executor.map(ShardTask(setup, _embed_shard), shards))
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    def encrypt(
        self, keys: ClientKeys, x_unit: np.ndarray, layout: CrossCovarianceLayout, chunk: int
    ) -> Generator[tuple[int, int, list[bytes]]]:
        """(start, count, ciphertexts) of every chunk of `chunk` ciphertexts, in order."""
        if self.executor.distributed:
            setup = functools.partial(
                _load_encryption_inputs, keys.he.params.name, save_to_bytes(keys.secret_key), x_unit, layout
            )
        else:
            setup = functools.partial(_given, EncryptionInputs(keys, x_unit, layout))
        spans = [(s, min(chunk, layout.num_ciphertexts - s)) for s in range(0, layout.num_ciphertexts, chunk)]
        results = self.executor.map(ShardTask(setup, _encrypt_chunk), spans)
        try:
            for (start, count), blobs in zip(spans, results, strict=True):
                yield start, count, blobs
        finally:
            results.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.executor.close()
