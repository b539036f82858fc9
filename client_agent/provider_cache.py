"""What the agent remembers about the provider: its service info and the metadata of its heads.

Both change rarely (an operator adds or deletes a head), yet were fetched for every classification.
They are kept for `head_cache_seconds`; a head the provider answers 404 for is evicted at once, so a
deleted or re-created head is seen on the next request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared_protocol.messages import HeadInfo, ServiceInfo

from .provider_client import ProviderClient, ProviderError

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    fetched_at: float  # time.monotonic()


class ProviderCache:
    def __init__(self, provider: ProviderClient, ttl_seconds: float) -> None:
        self._provider = provider
        self._ttl = ttl_seconds
        self._info: _Entry[ServiceInfo] | None = None
        self._heads: dict[str, _Entry[HeadInfo]] = {}
        self._lock = threading.Lock()

    def _fresh(self, entry: _Entry[T] | None) -> bool:
        return entry is not None and time.monotonic() - entry.fetched_at < self._ttl

    def info(self) -> ServiceInfo:
        entry = self._info
        if entry is not None and self._fresh(entry):
            return entry.value
        info = self._provider.info()
        self._info = _Entry(info, time.monotonic())
        return info

    def head(self, head_id: str, *, refresh: bool = False) -> HeadInfo:
        """The head's metadata; a ProviderError (404 unknown_head) when the provider has no such head.
        `refresh` asks the provider even when a cached entry is fresh (before starting an alignment,
        which is rare and long, a stale answer would cost more than the lookup)."""
        with self._lock:
            entry = self._heads.get(head_id)
        if not refresh and entry is not None and self._fresh(entry):
            return entry.value
        try:
            head = self._provider.head(head_id)
        except ProviderError as exc:
            if exc.status == 404:
                self.evict_head(head_id)
            raise
        with self._lock:
            self._heads[head_id] = _Entry(head, time.monotonic())
        return head

    def evict_head(self, head_id: str) -> None:
        with self._lock:
            self._heads.pop(head_id, None)
