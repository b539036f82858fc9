"""Client agent state: the long-lived objects one agent process owns, opened at start-up and closed at
shutdown. Routers reach them through `deps.State`; nothing here is module-global."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from helix_embeddings import CachedEmbedder, Embedder, load_embedder
from helix_shards import make_executor
from helix_web.private_files import private_dir
from helix_web.readiness import writable_dir
from shared_protocol.messages import HeadInfo, KeyPurpose

from .jobs import JobManager
from .key_manager import InferenceKeys
from .keystore import KeyStore
from .maps import MapStore
from .provider_cache import ProviderCache
from .provider_client import ProviderClient, ProviderError
from .settings import ClientSettings
from .shards import AlignmentShards

log = logging.getLogger(__name__)


class ProviderReadiness:
    """The provider's readiness as last seen, reused for `ttl_seconds`: probes of the agent's /readyz
    (every few seconds, from several places) do not each cost a request to the provider."""

    #: How long one probe of the provider may take.
    PROBE_TIMEOUT_SECONDS = 5.0

    def __init__(self, provider: ProviderClient, ttl_seconds: float) -> None:
        self._provider = provider
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._reason: str | None = None

    def reason(self) -> str | None:
        """None if the provider is ready, else why not."""
        with self._lock:
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at >= self._ttl:
                self._reason = self._provider.not_ready_reason(self.PROBE_TIMEOUT_SECONDS)
                self._checked_at = time.monotonic()
            return self._reason


@dataclass
class ClientState:
    settings: ClientSettings
    provider: ProviderClient
    cache: ProviderCache
    keystore: KeyStore
    inference_keys: InferenceKeys
    maps: MapStore
    jobs: JobManager
    provider_readiness: ProviderReadiness
    shards: AlignmentShards
    _embedder: Embedder | None = None
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: ClientSettings) -> ClientState:
        private_dir(settings.data_dir)
        provider = ProviderClient(
            settings.provider_url,
            settings.provider_ca_cert,
            settings.request_timeout_seconds,
            settings.api_key(),
            retry_seconds=settings.provider_retry_seconds,
        )
        keystore = KeyStore(settings.data_dir / "keys")
        release_leftover_alignment_keys(keystore, provider)
        jobs = JobManager(
            settings.data_dir / "jobs",
            max_running=settings.max_running_alignments,
            max_retained=settings.max_retained_alignments,
        )
        delete_abandoned_sessions(jobs.abandoned_sessions, provider)
        return cls(
            settings=settings,
            provider=provider,
            cache=ProviderCache(provider, settings.head_cache_seconds),
            keystore=keystore,
            inference_keys=InferenceKeys(keystore, provider, settings.client_name, settings.key_renew_margin_seconds),
            maps=MapStore(settings.data_dir / "maps"),
            jobs=jobs,
            provider_readiness=ProviderReadiness(provider, settings.provider_ready_cache_seconds),
            shards=AlignmentShards(
                make_executor(settings.executor, address=settings.ray_address, workers=settings.ray_workers),
                embedder_spec=settings.embedder,
                embed_shard_texts=settings.embed_shard_texts if settings.executor != "local" else 0,
            ),
        )

    @property
    def loaded_embedder(self) -> Embedder | None:
        """The embedder if it has been loaded (health checks must not load a model)."""
        return self._embedder

    def embedder(self) -> Embedder:
        """The local embedder for public corpora, loaded on first use (loading a model takes seconds),
        behind an on-disk cache: alignments re-embed the same public texts."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = CachedEmbedder(
                    load_embedder(self.settings.embedder), self.settings.data_dir / "embedding-cache"
                )
            return self._embedder

    def query_embedder(self) -> Embedder:
        """The same model for private queries, without the disk cache. Why: a query's text (even as a
        hash) must not outlive its request on the client's disk, and a cache write costs more than
        embedding one text with a fast model (~5 ms against ~0.06 ms with WordLlama)."""
        embedder = self.embedder()
        return embedder.inner if isinstance(embedder, CachedEmbedder) else embedder

    def readiness(self) -> list[str | None]:
        """The readiness checks: data directory writable, provider ready (as last seen)."""
        return [writable_dir(self.settings.data_dir), self.provider_readiness.reason()]

    def inference_parameter_set(self, head: HeadInfo) -> str:
        """The set to classify under: the configured one, else the smallest round trip the provider
        evaluates this head under (it lists them smallest first), else its default."""
        if self.settings.parameter_set:
            return self.settings.parameter_set
        return head.parameter_sets[0] if head.parameter_sets else self.cache.info().default_parameter_set

    def close(self) -> None:
        self.jobs.close()
        self.provider.close()
        self.shards.close()


def release_leftover_alignment_keys(keystore: KeyStore, provider: ProviderClient) -> None:
    """Alignment keys are single-use and released by their run; one still on disk belongs to a run the
    previous process did not finish. Its secret is deleted now; the revocation at the provider is
    attempted in the background (start-up must not wait for the provider; the key expires there anyway)."""
    leftovers = keystore.stored(KeyPurpose.alignment)
    for stored in leftovers:
        keystore.forget(stored.key_id)

    def revoke() -> None:
        for stored in leftovers:
            if stored.provider_url != provider.base_url:
                continue
            try:
                provider.revoke_key(stored.key_id)
            except ProviderError as exc:
                log.info("could not revoke a leftover alignment key: %s", type(exc).__name__)

    if leftovers:
        threading.Thread(target=revoke, name="revoke-leftover-keys", daemon=True).start()


def delete_abandoned_sessions(session_ids: list[str], provider: ProviderClient) -> None:
    """Delete, in the background, the provider sessions of alignments the previous process did not
    finish (their jobs are failed now); the provider's garbage collector reclaims any it cannot reach."""

    def delete() -> None:
        for session_id in session_ids:
            try:
                provider.delete_session(session_id)
            except ProviderError as exc:
                log.info("could not delete abandoned alignment session: %s", exc)

    if session_ids:
        threading.Thread(target=delete, name="delete-abandoned-sessions", daemon=True).start()
