"""Benchmark modes: which sizes are measured and how many repetitions each gets."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

PARAMETER_SET = "ckks-n8192-q200"
#: The inference-only set heads are offered under first when they fit it (`helix_he.suitability`).
SMALL_PARAMETER_SET = "ckks-n4096-q47"
#: The alignment-capable set the agent aligns under when the client's dimension packs twice into it.
SMALL_ALIGNMENT_PARAMETER_SET = "ckks-n4096-q109"

# The TenSEAL baseline: the parameters of our pinned set, through TenSEAL's high-level API.
BASELINE_POLY_MODULUS_DEGREE = 8192
BASELINE_COEFF_MOD_BIT_SIZES = (60, 40, 40, 60)
BASELINE_SCALE_BITS = 40


@dataclass(frozen=True)
class AlignmentCase:
    num_samples: int  # n
    client_dim: int  # d_B, the client's (encrypted) embedding dimension
    provider_dim: int  # d_A, the provider's (plaintext) embedding dimension

    def label(self) -> str:
        return f"n={self.num_samples}, d_B={self.client_dim}, d_A={self.provider_dim}"


@dataclass(frozen=True)
class Mode:
    name: str
    head_grid: tuple[tuple[int, int], ...]  # (d, k)
    head_runs: int  # timed runs of our path per (d, k), after one warm-up
    baseline_grid: tuple[tuple[int, int], ...]
    baseline_runs: int  # timed runs of TenSEAL matmul per (d, k) (seconds each, no warm-up)
    alignment: tuple[AlignmentCase, ...]
    alignment_runs: int  # timed runs of our alignment path per case
    batch_queries: int = 4096  # feature-major batch at d=384, k=4
    batch_runs: int = 2
    concurrency_queries: int = 64
    naive_slice: tuple[int, int] = (4, 8)  # (ciphertexts, columns) measured for the naive baseline
    naive_reps: int = 3
    full: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["alignment"] = [asdict(c) for c in self.alignment]
        return d


FULL_ALIGNMENT_CASE = AlignmentCase(16384, 768, 768)


def make_mode(quick: bool, full: bool) -> Mode:
    if quick:
        grid = tuple(itertools.product((384, 768), (2, 4)))
        mode = Mode(
            name="quick",
            head_grid=grid,
            head_runs=5,
            baseline_grid=((384, 2), (768, 2)),
            baseline_runs=1,
            alignment=(AlignmentCase(1024, 256, 384),),
            alignment_runs=1,
            naive_reps=1,
            batch_queries=512,
            batch_runs=1,
            concurrency_queries=16,
        )
    else:
        grid = tuple(itertools.product((384, 768, 1536, 3072), (2, 4, 14)))
        mode = Mode(
            name="default",
            head_grid=grid,
            head_runs=20,
            baseline_grid=grid,
            baseline_runs=3,
            alignment=(AlignmentCase(4096, 384, 384),),
            alignment_runs=1,
        )
    if full:
        mode = Mode(
            **{
                **mode.__dict__,
                "name": mode.name + "+full",
                "full": True,
                "alignment": mode.alignment + (FULL_ALIGNMENT_CASE,),
            }
        )
    return mode
