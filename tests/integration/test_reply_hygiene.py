"""Reply hygiene against the real provider: a reply decrypts to the requested outputs and nothing
else. An inference reply carries c0 only at the output coefficients; in an alignment result every
coefficient that is not an output must be uniform modulo the reply's prime. Otherwise the client
would read partial products x_i * W[i, j] of the head (or of Y_A in an alignment).

The test is an honest client built from the client agent's own pieces (ClientKeys, ProviderClient),
decrypting the *whole* reply with its secret key down to raw residues modulo q.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import assert_uniform_mod_q, centred_values, poll_until, raw_reply_residues, register_seeded

from client_agent.provider_client import ProviderClient
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_logits, encrypt_queries
from helix_he.packing import CrossCovarianceLayout, LinearHeadLayout, trace_galois_elements
from helix_he.rlwe import ReplyCiphertext
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentState,
    ClassifyHeader,
    KeyPurpose,
    KeyRegistrationHeader,
)

CLIENT_NAME = "pytest-hygiene"
ALIGNMENT_STRIDE_BITS = 7  # 8 features: 128 samples per ciphertext, 128 columns per reply


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def info(pc: ProviderClient) -> Any:
    return pc.info()


def register(pc: ProviderClient, purpose: KeyPurpose, parameter_set: str) -> tuple[str, ClientKeys]:
    keys = ClientKeys.generate(parameter_set)
    bits = ALIGNMENT_STRIDE_BITS if purpose == KeyPurpose.alignment else 0
    elements = trace_galois_elements(keys.he.n, bits)
    key = register_seeded(
        pc,
        keys,
        KeyRegistrationHeader(
            client_name=CLIENT_NAME, purpose=purpose, parameter_set=parameter_set, galois_elements=elements
        ),
        bits,
    )
    assert key.purpose == purpose and key.parameter_set == parameter_set and key.galois_elements == elements
    return key.key_id, keys


def test_classify_reply_holds_logits_and_nothing_else(pc: ProviderClient, info: Any, provider: Any) -> None:
    """A compact reply carries c0 only at the logit coefficients and c1 whole: decrypting all it holds
    gives the logits, there is no other coefficient to decrypt, and c1 is uniform and fresh per reply
    (so it is not the client-computable product of its own seeded polynomial with W)."""
    key_id, keys = register(pc, KeyPurpose.inference, info.default_parameter_set)
    head = pc.head("sst2")
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    rng = np.random.default_rng(1234)
    x = rng.normal(0.0, 0.05, size=(3, head.dim))  # roughly the scale of provider-space embeddings
    x[2] = x[0]  # the same query twice: its replies must carry the same logits under fresh randomness
    blobs = encrypt_queries(keys, x, layout)
    header = ClassifyHeader(head_id="sst2", key_id=key_id, num_queries=len(blobs), query_scale_bits=QUERY_SCALE_BITS)
    reply, out, _, _ = pc.classify(header, blobs, max_blob_bytes=info.limits.max_ciphertext_bytes)

    assert reply.num_queries == 3 and reply.ciphertexts_per_query == layout.ciphertexts_per_query == 1
    assert reply.class_groups == [[0, 1]] and reply.num_classes == 2 and reply.noise_flooding_bits == 0
    positions = np.asarray(reply.output_positions[0])
    assert positions.tolist() == layout.output_positions(0).tolist() == [head.dim - 1, 2 * head.dim - 1]
    assert len(out) == 3

    resp = provider.admin.post("/v1/admin/heads/sst2/reference-logits", json={"embeddings": x.tolist()})
    assert resp.status_code == 200, resp.text
    ref = np.asarray(resp.json()["logits"])
    assert float(np.max(np.abs(decrypt_logits(keys, reply, out) - ref))) < 1e-4

    he = keys.he
    q = he.output_level.primes[0]
    c1s = []
    for qi, blob in enumerate(out):
        assert len(blob) == ReplyCiphertext.wire_size(q, he.n, len(positions)), "a reply carries more than its outputs"
        parsed = ReplyCiphertext.from_bytes(blob, level=he.output_level.index, q=q, n=he.n, count=len(positions))
        assert parsed.scale == pytest.approx(2.0**48, rel=1e-9)
        res, q_got, _ = keys.reply_residues(blob, positions)
        assert q_got == q and q.bit_length() == 60
        assert np.array_equal(centred_values(res, q, parsed.scale), keys.decrypt_reply(blob, positions))
        assert float(np.max(np.abs(keys.decrypt_reply(blob, positions) - ref[qi]))) < 1e-4
        assert_uniform_mod_q(parsed.c1, q, f"classify reply {qi}, c1")
        c1s.append(parsed.c1)
    assert np.count_nonzero(c1s[0] == c1s[2]) <= 2, "two replies to the same query share c1 coefficients"
    pc.revoke_key(key_id)


def test_alignment_result_holds_cross_covariance_and_uniform_noise_only(
    pc: ProviderClient, info: Any, public_alignment_texts: Any
) -> None:
    """A tiny alignment session driven directly: random client data X (|x| <= 1, 8 columns, the
    last one constant 1 as in X_aug) against the `wiki` corpus. Result ciphertext g carries
    (X^T Y)[a, g*m + j] at coefficient a*m + j; every other coefficient must be uniform mod q: before
    the trace they held partial products of Y_A, and beyond row 8 sums of Y_A with the client's
    own (known) encryption noise."""
    key_id, keys = register(pc, KeyPurpose.alignment, info.default_parameter_set)
    corpus = pc.corpus("wiki")
    feature_dim = 8
    session = pc.create_alignment(
        AlignmentCreate(
            head_id="sst2",
            corpus_id="wiki",
            corpus_sha256=corpus.sha256,
            key_id=key_id,
            feature_dim=feature_dim,
            include_head_texts=False,
            client_model_id="pytest-random",
        )
    )
    assert session.num_samples == corpus.size == 400 and session.state == AlignmentState.receiving
    layout = CrossCovarianceLayout.for_key(keys.he.n, feature_dim, session.num_samples, ALIGNMENT_STRIDE_BITS)
    assert (
        session.num_ciphertexts == layout.num_ciphertexts
        and session.stride_bits == layout.stride_bits == ALIGNMENT_STRIDE_BITS
    )
    rng = np.random.default_rng(99)
    x = np.hstack(
        [rng.uniform(-1.0, 1.0, size=(session.num_samples, feature_dim - 1)), np.ones((session.num_samples, 1))]
    )
    blobs = encrypt_alignment_data(keys, x, layout, 0, layout.num_ciphertexts)
    session = pc.upload_chunk(
        session.session_id,
        AlignmentChunkHeader(start=0, count=len(blobs), data_scale_bits=layout.data_scale_bits),
        blobs,
    )
    assert session.received_ciphertexts == session.num_ciphertexts
    pc.start_compute(session.session_id)
    session = poll_until(
        lambda: pc.session(session.session_id),
        lambda s: s.state != AlignmentState.computing,
        deadline_s=120,
        what="alignment session",
    )
    assert session.state == AlignmentState.done, session.error
    header, result = pc.alignment_result(session.session_id, max_blob_bytes=info.limits.max_ciphertext_bytes)
    assert header.feature_dim == feature_dim and header.output_columns == session.output_columns
    assert header.stride_bits == layout.stride_bits
    groups = layout.result_groups(header.output_columns)
    assert len(result) == len(groups) == -(-header.output_columns // layout.stride)

    xty = decrypt_cross_covariance(keys, header, result, max_bytes=info.limits.max_ciphertext_bytes)
    assert xty.shape == (feature_dim, header.output_columns)
    # What the provider should have computed, from the public corpus and the provider's encoder.
    expected = x.T @ public_alignment_texts.y_corpus
    err = float(np.max(np.abs(xty - expected)))
    assert err < 1e-4, f"decrypted X^T Y deviates from the plaintext product by {err:.3g}"

    pooled = []
    for g, (cols, blob) in enumerate(zip(groups, result, strict=True)):
        raw, q, scale = raw_reply_residues(keys, blob, max_bytes=info.limits.max_ciphertext_bytes)
        assert scale == pytest.approx(header.value_scale, rel=1e-9)
        pos = layout.result_positions(len(cols))
        assert np.array_equal(centred_values(raw[pos], q, scale), xty[:, cols.start : cols.stop]), (
            f"reply {g}: outputs differ"
        )
        others = np.delete(raw, pos.reshape(-1))
        assert others.size == keys.he.n - feature_dim * len(cols)
        assert_uniform_mod_q(others, q, f"alignment reply {g}, non-output coefficients")
        pooled.append(others)
    assert_uniform_mod_q(np.concatenate(pooled), q, "alignment result, non-output coefficients pooled", bins=64)
    pc.delete_session(session.session_id)
    pc.revoke_key(key_id)
