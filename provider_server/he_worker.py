"""Functions that run inside the provider's HE worker processes.

Why processes: SEAL is single-threaded and holds the GIL, so HE work in the server process would
stall every other request; a process pool uses all cores and keeps the event loop free. Workers
receive file paths and small arguments, cache prepared heads per process, and return bytes.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

import tenseal.sealapi as seal

from helix_he.context import CiphertextError, he_context, load_from_bytes
from helix_he.cross_covariance import encrypted_cross_covariance, validate_alignment_ciphertexts
from helix_he.keys import Rerandomizer
from helix_he.linear_head import EncryptedLinearHead, encrypted_linear_head, encrypted_linear_head_batch
from helix_he.packing import CrossCovarianceLayout

from .blobs import load_array


def init_worker() -> None:
    """End this worker if the server process goes away, so a killed server never leaves workers
    computing for nobody. (A watchdog on the parent pid, not PR_SET_PDEATHSIG: that signal fires
    when the *thread* that forked the worker exits, and pools spawn workers from passing threads.)"""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="helix-parent-watchdog", daemon=True).start()


def warm_up(parameter_sets: list[str]) -> int:
    """Build contexts (and the native NTT) up front so the first request is not slow."""
    for name in parameter_sets:
        he_context(name)
    return len(parameter_sets)


@functools.lru_cache(maxsize=32)
def _head(parameter_set: str, weights_path: str, bias_path: str, noise_bits: int) -> EncryptedLinearHead:
    he = he_context(parameter_set)
    return EncryptedLinearHead(he, load_array(Path(weights_path)), load_array(Path(bias_path)), noise_flooding_bits=noise_bits)


@functools.lru_cache(maxsize=64)
def _rerandomizer(parameter_set: str, public_key_path: str) -> Rerandomizer:
    """The client's registered public key (validated at registration), loaded once per worker."""
    he = he_context(parameter_set)
    pk = seal.PublicKey()
    load_from_bytes(pk, he.context, Path(public_key_path).read_bytes())
    return Rerandomizer(he, pk)


def classify(parameter_set: str, weights_path: str, bias_path: str, noise_bits: int, public_key_path: str,
             queries: list[bytes], max_ciphertext_bytes: int, query_scale_bits: int) -> list[list[bytes]] | str:
    """Evaluate a head on serialized queries. A bad ciphertext returns its error text (not raised,
    so the parent can answer 4xx without treating it as a server fault)."""
    head = _head(parameter_set, weights_path, bias_path, noise_bits)
    try:
        return encrypted_linear_head(head, queries, _rerandomizer(parameter_set, public_key_path),
                                     max_ciphertext_bytes=max_ciphertext_bytes, query_scale_bits=query_scale_bits)
    except CiphertextError as exc:
        return str(exc)


def classify_batch(parameter_set: str, weights_path: str, bias_path: str, noise_bits: int, public_key_path: str,
                   features: list[bytes], num_queries: int, max_ciphertext_bytes: int, query_scale_bits: int) -> list[bytes] | str:
    """Evaluate a head on a feature-major batch; a bad ciphertext returns its error text."""
    head = _head(parameter_set, weights_path, bias_path, noise_bits)
    try:
        return encrypted_linear_head_batch(head, features, num_queries, _rerandomizer(parameter_set, public_key_path),
                                           max_ciphertext_bytes=max_ciphertext_bytes, query_scale_bits=query_scale_bits)
    except CiphertextError as exc:
        return str(exc)


def validate_ciphertexts(parameter_set: str, blobs: list[bytes], max_ciphertext_bytes: int, scale_bits: int) -> str | None:
    """Full SEAL validation of uploaded alignment ciphertexts (last level, the stride layout's depth
    needs no rescale); returns an error text or None."""
    try:
        validate_alignment_ciphertexts(he_context(parameter_set), blobs, max_ciphertext_bytes=max_ciphertext_bytes,
                                       scale_bits=scale_bits)
    except CiphertextError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=8)
def _galois_keys(parameter_set: str, galois_keys_path: str) -> seal.GaloisKeys:
    """The client's registered Galois keys (validated at registration), loaded once per worker."""
    he = he_context(parameter_set)
    keys = seal.GaloisKeys()
    load_from_bytes(keys, he.context, Path(galois_keys_path).read_bytes())
    return keys


def cross_covariance(parameter_set: str, feature_dim: int, num_samples: int, stride_bits: int, ct_paths: list[str],
                     y_path: str, group_start: int, group_stop: int, y_scale_bits: int, max_ciphertext_bytes: int,
                     public_key_path: str, galois_keys_path: str, folds: list[np.ndarray] | None = None
                     ) -> tuple[list[bytes], float]:
    """Result ciphertexts [group_start, group_stop) of a session (each m columns of X^T Y), or of
    every fold's X_k^T Y_k (fold-major) when `folds` lists the folds' sample indices."""
    he = he_context(parameter_set)
    layout = CrossCovarianceLayout(n=he.n, feature_dim=feature_dim, num_samples=num_samples, stride_bits=stride_bits)
    y = load_array(Path(y_path))

    def load(c: int) -> seal.Ciphertext:
        return he.ciphertext_from_bytes(Path(ct_paths[c]).read_bytes(), level=he.output_level, max_bytes=max_ciphertext_bytes)

    return encrypted_cross_covariance(he, layout, load, y, range(group_start, group_stop),
                                      _rerandomizer(parameter_set, public_key_path),
                                      _galois_keys(parameter_set, galois_keys_path), y_scale_bits=y_scale_bits,
                                      folds=folds)
