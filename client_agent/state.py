"""Client agent state: provider connection, local embedder, key and map stores, alignment jobs."""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from helix_embeddings import CachedEmbedder, Embedder, load_embedder

from .alignment import AlignmentProgress
from helix_he.keys import ClientKeys
from .keystore import KeyStore, StoredKey
from .maps import MapStore
from .provider_client import ProviderClient
from .settings import ClientSettings


@dataclass
class AlignmentJob:
    job_id: str
    head_id: str
    corpus_id: str
    state: str = "running"  # running | done | failed
    progress: AlignmentProgress = field(default_factory=AlignmentProgress)
    map_id: str | None = None
    error: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


@dataclass
class ClientState:
    settings: ClientSettings
    provider: ProviderClient
    keystore: KeyStore
    maps: MapStore
    jobs: dict[str, AlignmentJob] = field(default_factory=dict)
    _embedder: Embedder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _info: Any = None

    @classmethod
    def open(cls, settings: ClientSettings) -> "ClientState":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        provider = ProviderClient(settings.provider_url, settings.provider_ca_cert, settings.request_timeout_seconds)
        return cls(settings, provider, KeyStore(settings.data_dir / "keys"), MapStore(settings.data_dir / "maps"))

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = CachedEmbedder(load_embedder(self.settings.embedder), self.settings.data_dir / "embedding-cache")
            return self._embedder

    def provider_info(self) -> Any:
        if self._info is None:
            self._info = self.provider.info()
        return self._info

    def inference_key(self) -> tuple[StoredKey, ClientKeys]:
        pset = self.settings.parameter_set or self.provider_info().default_parameter_set
        with self._lock:
            return self.keystore.inference_key(self.provider, self.settings.client_name, pset, self.settings.key_renew_margin_seconds)

    def new_job(self, head_id: str, corpus_id: str) -> AlignmentJob:
        job = AlignmentJob(job_id="j_" + secrets.token_hex(6), head_id=head_id, corpus_id=corpus_id)
        self.jobs[job.job_id] = job
        return job

    def close(self) -> None:
        self.provider.close()
