"""Opt-in control of torch's intra-op thread count for every torch-based backend.

Why a module of its own: both the sentence-transformers and the causal-LM
backends need it, and importing it must not drag in sentence-transformers.
"""

from __future__ import annotations

import os

THREADS_ENV = "HELIX_TORCH_THREADS"


def configure_torch_threads() -> int | None:
    """Apply ``HELIX_TORCH_THREADS`` to torch's intra-op thread pool, if set.

    Why an opt-in env var: on a 2-core box shared by a provider and a client
    process, each may want 1 thread; by default we leave torch's own choice alone.
    Returns the thread count applied, or None when the variable is unset.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError as exc:
        raise ValueError(f"{THREADS_ENV}={raw!r} is not an integer") from exc
    if n <= 0:
        raise ValueError(f"{THREADS_ENV}={n} must be positive")
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
