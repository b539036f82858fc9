"""The feature-major batch endpoint and concurrent clients, against the real provider over TLS.

* A batch of queries (one ciphertext per embedding dimension) decrypts to the provider's plaintext
  logits for every query, and bad batch requests get a clear 4xx.
* 16 clients classifying at once all get correct answers, and HE work never blocks the event loop:
  while a large batch is being evaluated in a worker, cheap requests keep being answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import assert_api_error, register_seeded

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_batch_logits, decrypt_logits, encrypt_batch, encrypt_queries
from helix_he.packing import LinearHeadLayout
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import ClassifyBatchHeader, ClassifyHeader, KeyPurpose, KeyRegistrationHeader

CLIENT_NAME = "pytest-batch"


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def key(pc: ProviderClient) -> tuple[str, ClientKeys]:
    info = pc.info()
    keys = ClientKeys.generate(info.default_parameter_set)
    reg = register_seeded(
        pc,
        keys,
        KeyRegistrationHeader(
            client_name=CLIENT_NAME, purpose=KeyPurpose.inference, parameter_set=info.default_parameter_set
        ),
    )
    return reg.key_id, keys


def reference_logits(provider: Any, x: np.ndarray) -> np.ndarray:
    resp = provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": x.tolist()})
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["logits"])


def test_batch_matches_plaintext_logits(pc: ProviderClient, key: tuple[str, ClientKeys], provider: Any) -> None:
    key_id, keys = key
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    x = np.random.default_rng(8).normal(0.0, 0.05, size=(1000, head.dim))
    header = ClassifyBatchHeader(
        head_id="sst2", key_id=key_id, num_queries=len(x), dim=head.dim, query_scale_bits=QUERY_SCALE_BITS
    )
    features = encrypt_batch(keys, x, layout)
    reply, out, sent, received = pc.classify_batch(header, features, max_blob_bytes=1 << 20)
    assert reply.num_queries == 1000 and reply.num_classes == head.num_classes == len(out)
    logits = decrypt_batch_logits(keys, reply, out)
    ref = reference_logits(provider, x)
    assert float(np.max(np.abs(logits - ref))) < 1e-4
    assert np.array_equal(np.argmax(logits, axis=1), np.argmax(ref, axis=1))
    assert sent / len(x) < 30_000  # 384 ciphertexts of 65.6 KB shared by 1,000 queries


def test_bad_batches_are_refused(pc: ProviderClient, key: tuple[str, ClientKeys], provider: Any) -> None:
    key_id, keys = key
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    features = encrypt_batch(keys, np.zeros((3, head.dim)), layout)

    def post(header: ClassifyBatchHeader, blobs: list[bytes]) -> Any:
        return provider.http.post(
            "/v1/classify/batch", content=encode_frame(header, blobs), headers={"content-type": FRAME_MEDIA_TYPE}
        )

    ok = dict(head_id="sst2", key_id=key_id, num_queries=3, dim=head.dim, query_scale_bits=QUERY_SCALE_BITS)
    assert post(ClassifyBatchHeader(**ok), features).status_code == 200
    assert_api_error(post(ClassifyBatchHeader(**ok), features[:-1]), 400, "malformed_frame", str(head.dim))
    assert_api_error(post(ClassifyBatchHeader(**{**ok, "num_queries": 9000}), features), 400, "malformed_frame", "8192")
    assert_api_error(post(ClassifyBatchHeader(**{**ok, "head_id": "nope"}), features), 404, "unknown_head", "nope")
    assert_api_error(
        post(ClassifyBatchHeader(**{**ok, "query_scale_bits": 30}), features), 422, "invalid_ciphertext", "scale"
    )
    bad = list(features)
    bad[5] = bad[5][:-3]
    assert_api_error(post(ClassifyBatchHeader(**ok), bad), 422, "invalid_ciphertext", "feature 5")


def test_sixteen_concurrent_clients_and_a_responsive_server(
    pc: ProviderClient, key: tuple[str, ClientKeys], provider: Any
) -> None:
    """16 threads, each its own HTTPS client, classify different queries at once; every answer is
    the plaintext answer. Meanwhile a large batch is in flight: requests that need no HE work are
    answered before it completes, so the event loop is never blocked by HE computation."""
    key_id, keys = key
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    rng = np.random.default_rng(16)
    xs = [rng.normal(0.0, 0.05, size=(2, head.dim)) for _ in range(16)]
    ref = reference_logits(provider, np.vstack(xs))
    big = rng.normal(0.0, 0.05, size=(keys.he.n, head.dim))
    big_features = encrypt_batch(keys, big, layout)
    blobs = [encrypt_queries(keys, x, layout) for x in xs]
    batch_done = threading.Event()

    def one_client(i: int) -> np.ndarray:
        with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
            header = ClassifyHeader(head_id="sst2", key_id=key_id, num_queries=2, query_scale_bits=QUERY_SCALE_BITS)
            reply, out, _, _ = client.classify(header, blobs[i], max_blob_bytes=1 << 20)
            return decrypt_logits(keys, reply, out)

    def big_batch() -> np.ndarray:
        with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
            header = ClassifyBatchHeader(
                head_id="sst2", key_id=key_id, num_queries=len(big), dim=head.dim, query_scale_bits=QUERY_SCALE_BITS
            )
            try:
                reply, out, _, _ = client.classify_batch(header, big_features, max_blob_bytes=1 << 20)
            finally:
                batch_done.set()
        return decrypt_batch_logits(keys, reply, out)

    def cheap_calls() -> int:
        """Service-info calls answered while the batch is in flight (upload, HE work, reply)."""
        answered = 0
        with ProviderClient(provider.url, Path(provider.ca), timeout=60, api_key=provider.api_key) as client:
            while not batch_done.is_set():
                client.info()
                answered += 1
        return answered

    with ThreadPoolExecutor(max_workers=18) as pool:
        batch_future = pool.submit(big_batch)
        cheap_future = pool.submit(cheap_calls)
        results = list(pool.map(one_client, range(16)))
        batch_logits = batch_future.result()
        answered = cheap_future.result()
    got = np.vstack(results)
    assert float(np.max(np.abs(got - ref))) < 1e-4
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(ref, axis=1))
    assert batch_logits.shape == (keys.he.n, head.num_classes)
    assert answered >= 3, f"only {answered} cheap requests were answered while the batch was in flight"
