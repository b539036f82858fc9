"""Provider-held alignment, provider side: the block layout both parties derive, the methods and
parameters a client may ask for, and the map the provider solves: the very map the client would solve
from the same statistics (whole, or per validation fold for the *_cv methods)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from helix_alignment.methods import solve_method, stats_of, sum_stats
from provider_server.errors import ProviderError
from provider_server.services.held_map import BlockLayout, check_blocks, check_map_method, solve_session_map
from provider_server.store import SessionRecord
from shared_protocol.folds import fold_rows
from shared_protocol.messages import AlignmentCreate, AlignmentState, MapHolder

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def request(**changes: object) -> AlignmentCreate:
    body = {"head_id": "h", "corpus_id": "c", "corpus_sha256": "ab" * 32, "feature_dim": 8, "map_holder": "provider"}
    return AlignmentCreate.model_validate({**body, **changes})


def session(n: int, d: int, rows: int, method: str = "", params: tuple[tuple[str, float], ...] = ()) -> SessionRecord:
    return SessionRecord(
        session_id="a_1",
        head_id="h",
        corpus_id="c",
        key_id="",
        parameter_set="",
        state=AlignmentState.receiving,
        num_samples=n,
        feature_dim=d,
        samples_per_ciphertext=rows,
        num_ciphertexts=-(-n // rows),
        received=(),
        computed_columns=0,
        output_columns=6,
        error=None,
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        include_head_texts=True,
        client_model_id="m",
        data_scale_bits=None,
        result_blob=None,
        map_holder=MapHolder.provider,
        map_method=method,
        map_params=params,
    )


def test_blocks_cover_every_row_within_the_size_limit() -> None:
    layout = BlockLayout.for_session(num_samples=1000, feature_dim=384, max_block_bytes=1 << 20)
    assert layout.rows == 341 and layout.blocks == 3  # 341 rows of 384 float64 fit 1 MiB
    assert [layout.block_rows(i) for i in range(3)] == [341, 341, 318]
    assert layout.block_bytes(2) == 318 * 384 * 8
    assert BlockLayout.for_session(10, 4, 1 << 20).rows == 10  # one block for a small session


def test_blocks_are_checked_for_size_and_values() -> None:
    s = session(10, 4, 6)
    good = [np.zeros((6, 4)).astype("<f8").tobytes(), np.ones((4, 4)).astype("<f8").tobytes()]
    check_blocks(s, 0, good)
    for start, blocks, word in (
        (0, [good[1]], "bytes"),  # block 0 needs 6 rows
        (1, [good[1], good[1]], "exceed"),
        (1, [np.full((4, 4), np.inf).astype("<f8").tobytes()], "finite"),
        (1, [np.full((4, 4), 1e9).astype("<f8").tobytes()], "finite"),
    ):
        with pytest.raises(ProviderError, match=word):
            check_blocks(s, start, blocks)


def test_only_methods_of_the_papers_statistics_and_their_own_parameters() -> None:
    assert check_map_method(request()) == ("ridge_scaled", ())
    assert check_map_method(request(map_method="ridge", map_params={"lam": 0.01})) == ("ridge", (("lam", 0.01),))
    assert check_map_method(request(map_method="ridge_cv"))[0] == "ridge_cv"
    for changes, code in (
        ({"map_method": "cca"}, "invalid_map_method"),  # needs the provider's Y^T Y
        ({"map_method": "nope"}, "invalid_map_method"),
        ({"map_params": {"lam": 1.0}}, "invalid_map_params"),
        ({"map_method": "ridge_cv", "map_params": {"folds": 3}}, "invalid_map_params"),  # the provider's to choose
        ({"map_params": {"kappa": 0.0}}, "invalid_map_params"),
        ({"map_method": "reduced_rank", "map_params": {"rank": 2.5}}, "invalid_map_params"),
    ):
        with pytest.raises(ProviderError) as info:
            check_map_method(request(**changes))
        assert info.value.code == code, changes


@pytest.mark.parametrize(
    ("method", "params"), [("ridge_scaled", ()), ("ridge", (("lam", 0.3),)), ("reduced_rank", (("rank", 3.0),))]
)
def test_the_provider_solves_the_clients_map(method: str, params: tuple[tuple[str, float], ...]) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 6))
    got, choice = solve_session_map(session(60, 8, 16, method, params), x, y, corpus_size=50, folds=5)
    want, chosen = solve_method(method, stats_of(x, y), **{k: int(v) if k == "rank" else v for k, v in params})
    np.testing.assert_allclose(got.weight, want.weight, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.bias, want.bias, rtol=1e-10, atol=1e-12)
    assert dict(choice).get("lambda") == pytest.approx(chosen.get("lambda", 0.3))


def test_validated_methods_use_the_shared_folds() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 8)), rng.normal(size=(70, 6))
    got, choice = solve_session_map(session(70, 8, 16, "ridge_cv"), x, y, corpus_size=60, folds=5)
    parts = [stats_of(x[r], y[r]) for r in fold_rows(60, 10, 5)]
    want, chosen = solve_method("ridge_cv", sum_stats(parts), folds=parts)
    np.testing.assert_allclose(got.weight, want.weight, rtol=1e-10, atol=1e-12)
    assert dict(choice)["kappa"] == chosen["kappa"] and "cv_losses" not in dict(choice)
