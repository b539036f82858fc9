"""Optional progress reporting for long embedding runs.

Why a helper: every backend batches its input, and a run over 50k texts on a
2-core machine (or through a rate-limited API) takes minutes, so ``progress=True``
should show one bar per ``embed`` call. tqdm is imported only when a bar is
wanted, so the default path costs nothing and prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "text") -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callable that moves a tqdm bar, or does nothing when disabled."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit)
    try:
        yield bar.update
    finally:
        bar.close()
