"""The parameter sets the provider evaluates a head under (`helix_he.suitability`), from its weights.

Blobs are content-addressed, so the answer for one pair of weight and bias blobs never changes and is
computed once per process."""

from __future__ import annotations

import functools
from pathlib import Path

from helix_he.suitability import suitable_parameter_sets
from shared_protocol.messages import OutputMode

from ..blobs import BlobStore, load_array
from ..settings import ProviderSettings
from ..store import HeadRecord


def head_parameter_sets(head: HeadRecord, blobs: BlobStore, settings: ProviderSettings) -> list[str]:
    """Accepted sets that carry this head's outputs exactly for queries of norm <= max_query_norm,
    smallest round trip first."""
    return list(
        _sets(
            str(blobs.path(head.weights_blob)),
            str(blobs.path(head.bias_blob)),
            head.output_mode == OutputMode.ranking,
            tuple(settings.parameter_sets),
            settings.max_query_norm,
        )
    )


@functools.lru_cache(maxsize=256)
def _sets(
    weights_path: str, bias_path: str, pairwise: bool, offered: tuple[str, ...], max_query_norm: float
) -> tuple[str, ...]:
    weight, bias = load_array(Path(weights_path)), load_array(Path(bias_path))
    return tuple(suitable_parameter_sets(offered, weight, bias, max_query_norm=max_query_norm, pairwise=pairwise))
