"""Per-worker caches of prepared HE objects, keyed by parameter set and blob path.

Blobs are content-addressed, so a path names fixed content and a cached object never goes stale.
Preparing a head (encoding W and b) or loading keys costs more than most single requests."""

from __future__ import annotations

import functools
from pathlib import Path

import tenseal.sealapi as seal

from helix_he.context import he_context, load_from_bytes
from helix_he.keys import Rerandomizer
from helix_he.linear_head import HeadCircuit, prepare_head

from ..blobs import load_array
from .refill import REFILLER, RESERVE_PER_KEY


@functools.lru_cache(maxsize=32)
def prepared_head(
    parameter_set: str, weights_path: str, bias_path: str, noise_bits: int, output_mode: str
) -> HeadCircuit:
    """A head's server half in one output mode (a head's mode is fixed, but the key is the content)."""
    he = he_context(parameter_set)
    return prepare_head(
        he,
        load_array(Path(weights_path)),
        load_array(Path(bias_path)),
        output_mode=output_mode,
        noise_flooding_bits=noise_bits,
    )


def rerandomizer(parameter_set: str, public_key_path: str) -> Rerandomizer:
    """The re-randomiser of a client's key; the worker keeps a reserve of encryptions of zero for it
    while the key is among the last used (`refill`)."""
    rr = _rerandomizer(parameter_set, public_key_path)
    REFILLER.touch(rr)
    return rr


@functools.lru_cache(maxsize=64)
def _rerandomizer(parameter_set: str, public_key_path: str) -> Rerandomizer:
    """The client's registered public key (validated at registration), loaded once per worker."""
    he = he_context(parameter_set)
    pk = seal.PublicKey()
    load_from_bytes(pk, he.context, Path(public_key_path).read_bytes())
    return Rerandomizer(he, pk, reserve=RESERVE_PER_KEY)


@functools.lru_cache(maxsize=8)
def galois_keys(parameter_set: str, galois_keys_path: str) -> seal.GaloisKeys:
    """The client's registered Galois keys (validated at registration), loaded once per worker."""
    he = he_context(parameter_set)
    keys = seal.GaloisKeys()
    load_from_bytes(keys, he.context, Path(galois_keys_path).read_bytes())
    return keys
