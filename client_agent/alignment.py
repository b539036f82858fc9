"""The client's half of secure alignment: embed the public texts, encrypt, stream, fetch
Enc(X_aug^T Y_A), decrypt and solve the map locally. X never leaves in the clear; the alignment key
pair is fresh and revoked when done.

`AlignmentRun` does one alignment, one method per phase, so each phase can be read (and fail) on its
own; `run()` calls them in order and always revokes and forgets the single-use key."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from helix_alignment import AffineMap, SufficientStats
from helix_alignment.methods import METHODS, solve_method, sum_stats
from helix_embeddings import Embedder
from helix_he.context import he_context
from helix_he.cross_covariance import decrypt_cross_covariance
from helix_he.keys import ClientKeys
from helix_he.packing import CrossCovarianceLayout, next_pow2, stride_bits_for
from shared_protocol.corpus import corpus_sha256
from shared_protocol.folds import fold_rows
from shared_protocol.messages import (
    AlignmentChunkHeader,
    AlignmentCreate,
    AlignmentResultHeader,
    AlignmentSession,
    AlignmentState,
    KeyPurpose,
    ServiceInfo,
)

from .alignment_config import AlignmentConfig
from .keystore import KeyStore, StoredKey
from .maps import MapStore, StoredMap
from .provider_client import ProviderClient, ProviderError
from .shards import AlignmentShards

#: How often a computation the provider reports as interrupted is started again before giving up.
MAX_COMPUTE_RESTARTS = 3


def interrupted(session: AlignmentSession) -> bool:
    """The provider failed the session only because the process computing it went away ("interrupted
    by a provider restart; POST .../compute again"): starting it again may well succeed."""
    return session.state == AlignmentState.failed and (session.error or "").startswith("interrupted")


class AlignmentError(RuntimeError):
    pass


@dataclass(frozen=True)
class AlignmentProgress:
    """What an alignment job reports while it runs."""

    phase: str = "starting"
    uploaded_ciphertexts: int = 0
    total_ciphertexts: int = 0
    computed_columns: int = 0
    total_columns: int = 0


ProgressFn = Callable[[AlignmentProgress], None]


@dataclass(frozen=True)
class PublicTexts:
    """The corpus texts, then (when asked for) the head's published texts, in that order."""

    texts: list[str]
    corpus_sha256: str
    corpus_size: int


@dataclass(frozen=True)
class Embedded:
    """The client's embeddings X, and X scaled into [-1, 1] for encryption."""

    x: np.ndarray
    scale: float

    @property
    def unit(self) -> np.ndarray:
        return self.x / self.scale


@dataclass(frozen=True)
class AlignmentKey:
    stored: StoredKey
    keys: ClientKeys
    stride_bits: int


@dataclass(frozen=True)
class DecryptedResult:
    """X^T Y and 1^T Y of the whole session, or of each fold, with the provider's fold sizes."""

    parts: list[tuple[np.ndarray, np.ndarray]]
    fold_sizes: list[int]


def decrypt_result(
    keys: ClientKeys, header: AlignmentResultHeader, blobs: list[bytes], max_bytes: int, per_fold: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(X^T Y, 1^T Y) of the whole session, or of each fold (fold-major blobs) when asked for."""
    if per_fold != bool(header.fold_sizes):
        raise AlignmentError(
            "the provider's result is " + ("not " if per_fold else "") + "per fold, unlike the request"
        )
    k = len(header.fold_sizes) if per_fold else 1
    sums = [np.asarray(s) for s in header.fold_y_sums] if per_fold else [np.asarray(header.y_sum)]
    if len(sums) != k or len(blobs) % k:
        raise AlignmentError(f"result carries {len(blobs)} ciphertexts and {len(sums)} sums for {k} folds")
    size = len(blobs) // k
    parts = []
    for f in range(k):
        xty = decrypt_cross_covariance(keys, header, blobs[f * size : (f + 1) * size], max_bytes=max_bytes)
        if sums[f].shape != (xty.shape[1],):
            raise AlignmentError(f"result carries {sums[f].shape} column sums for {xty.shape[1]} columns")
        parts.append((xty, sums[f]))
    return parts


def alignment_parameter_set(info: ServiceInfo, feature_dim: int) -> str:
    """The smallest ring the provider accepts for alignment that still packs at least two samples per
    ciphertext: the provider's product costs N x n x d_A, so half the ring is half its work (and a
    sixteenth of the Galois keys). The provider's default when none fits."""
    fits = [
        p for p in info.parameter_sets if p.supports_alignment and p.poly_modulus_degree >= 2 * next_pow2(feature_dim)
    ]
    if not fits:
        return info.default_parameter_set
    return min(fits, key=lambda p: (p.poly_modulus_degree, p.name != info.default_parameter_set)).name


class AlignmentRun:
    """One secure alignment against one provider head, from public texts to a stored map."""

    def __init__(
        self,
        config: AlignmentConfig,
        provider: ProviderClient,
        embedder: Embedder,
        keystore: KeyStore,
        maps: MapStore,
        progress: ProgressFn | None = None,
        on_session: Callable[[str], None] | None = None,
        shards: AlignmentShards | None = None,
    ) -> None:
        self.config = config
        self.shards = shards or AlignmentShards()
        self._on_session = on_session or (lambda session_id: None)
        self.provider = provider
        self.embedder = embedder
        self.keystore = keystore
        self.maps = maps
        self._report = progress or (lambda p: None)
        self.status = AlignmentProgress()
        self.per_fold = "fold_xty" in METHODS[config.map_method].needs

    def _progress(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        self._report(self.status)

    def run(self) -> StoredMap:
        t0 = time.perf_counter()
        sent0, recv0 = self.provider.bytes_sent, self.provider.bytes_received
        info = self.provider.info()
        public = self.fetch_texts(info)
        embedded = self.embed(public.texts)
        pset = self.config.parameter_set or alignment_parameter_set(info, embedded.x.shape[1])
        key = self.register_key(pset, embedded)
        open_id: str | None = None
        try:
            session, layout = self.open_session(key, public, embedded)
            open_id = session.session_id
            session = self.upload(session, key, layout, embedded)
            session = self.compute(session)
            result = self.decrypt(session, key, info)
            open_id = None  # decrypt deleted it
        finally:
            if open_id is not None:
                self.discard_session(open_id)
            self.release_key(key)
        affine, chosen = self.solve(embedded, public, result)
        self._progress(phase="done")
        return self.save(
            info,
            pset,
            public,
            embedded,
            affine,
            chosen,
            seconds=time.perf_counter() - t0,
            bytes_sent=self.provider.bytes_sent - sent0,
            bytes_received=self.provider.bytes_received - recv0,
        )

    # --- phases, in order ---------------------------------------------------------------------------
    def fetch_texts(self, info: ServiceInfo) -> PublicTexts:
        """The corpus (checked against its advertised hash), plus the head's published texts."""
        cfg = self.config
        self._progress(phase="fetching public texts")
        texts, sha = self.provider.corpus_texts(cfg.corpus_id)
        if corpus_sha256(texts) != sha:
            raise AlignmentError(f"corpus {cfg.corpus_id!r} texts do not hash to the advertised {sha}")
        corpus_size = len(texts)
        if self.per_fold and info.limits.alignment_validation_folds < 2:
            raise AlignmentError(
                f"map method {cfg.map_method!r} chooses its regularisation on validation folds, "
                "which this provider does not offer; use a method without validation folds"
            )
        if cfg.include_head_texts:
            ht = self.provider.head_texts(cfg.head_id)
            if corpus_sha256(ht.texts) != ht.sha256:
                raise AlignmentError("published head texts do not match their hash")
            texts = texts + ht.texts
        return PublicTexts(texts, sha, corpus_size)

    def embed(self, texts: list[str]) -> Embedded:
        self._progress(phase="embedding")
        x = self.shards.embed(self.embedder, texts)
        # |x| <= 1 entrywise keeps every encrypted sum inside the modulus (the provider assumes it).
        return Embedded(x, float(np.max(np.abs(x))) or 1.0)

    def register_key(self, parameter_set: str, embedded: Embedded) -> AlignmentKey:
        """A fresh single-use key pair with the Galois keys the packing of this X needs."""
        stride_bits = max(1, stride_bits_for(he_context(parameter_set).n, embedded.x.shape[1]))
        stored, keys = self.keystore.register(
            self.provider, self.config.client_name, KeyPurpose.alignment, parameter_set, stride_bits=stride_bits
        )
        return AlignmentKey(stored, keys, stride_bits)

    def open_session(
        self, key: AlignmentKey, public: PublicTexts, embedded: Embedded
    ) -> tuple[AlignmentSession, CrossCovarianceLayout]:
        """Create the provider's session and check that both sides agree on the packing."""
        cfg = self.config
        n_samples, dim = embedded.x.shape
        session = self.provider.create_alignment(
            AlignmentCreate(
                head_id=cfg.head_id,
                corpus_id=cfg.corpus_id,
                corpus_sha256=public.corpus_sha256,
                key_id=key.stored.key_id,
                feature_dim=dim,
                include_head_texts=cfg.include_head_texts,
                client_model_id=self.embedder.model_id,
                validation_folds=self.per_fold,
            )
        )
        self._on_session(session.session_id)  # recorded at once: a restarted agent deletes it
        if session.num_samples != n_samples:
            raise AlignmentError(f"provider expects {session.num_samples} samples, the client embedded {n_samples}")
        layout = CrossCovarianceLayout.for_key(key.keys.he.n, dim, n_samples, key.stride_bits)
        if (session.samples_per_ciphertext, session.num_ciphertexts) != (
            layout.samples_per_ciphertext,
            layout.num_ciphertexts,
        ):
            raise AlignmentError(
                f"provider expects {session.num_ciphertexts} ciphertexts of "
                f"{session.samples_per_ciphertext} samples, the client packed "
                f"{layout.num_ciphertexts} of {layout.samples_per_ciphertext}"
            )
        if layout.data_scale_bits > session.max_data_scale_bits:
            raise AlignmentError(f"provider accepts data scales up to 2^{session.max_data_scale_bits}")
        return session, layout

    def upload(
        self, session: AlignmentSession, key: AlignmentKey, layout: CrossCovarianceLayout, embedded: Embedded
    ) -> AlignmentSession:
        """Encrypt and send X in chunks, so neither side holds all ciphertexts at once (with a cluster
        executor, a few chunks are encrypted ahead while earlier ones are sent)."""
        chunk = self.config.chunk_ciphertexts
        self._progress(
            phase="uploading", total_ciphertexts=layout.num_ciphertexts, total_columns=session.output_columns
        )
        with contextlib.closing(self.shards.encrypt(key.keys, embedded.unit, layout, chunk)) as chunks:
            for start, count, blobs in chunks:
                header = AlignmentChunkHeader(start=start, count=count, data_scale_bits=layout.data_scale_bits)
                session = self.provider.upload_chunk(session.session_id, header, blobs)
                self._progress(uploaded_ciphertexts=session.received_ciphertexts)
        return session

    def compute(self, session: AlignmentSession) -> AlignmentSession:
        """Start the provider's computation and follow it until it is done or failed. A computation
        the provider reports as interrupted (its process restarted, or the replica running it was
        lost) is started again, since the uploaded ciphertexts are still there; a few times at most."""
        self._progress(phase="computing")
        session = self.provider.start_compute(session.session_id)
        restarts = 0
        while True:
            while session.state == AlignmentState.computing:
                time.sleep(self.config.poll_seconds)  # the provider offers no push; poll its session
                session = self.provider.session(session.session_id)
                if session.computed_columns != self.status.computed_columns:
                    self._progress(computed_columns=session.computed_columns)
            if not (interrupted(session) and restarts < MAX_COMPUTE_RESTARTS):
                break
            restarts += 1
            session = self.provider.start_compute(session.session_id)
        if session.state != AlignmentState.done:
            raise AlignmentError(f"alignment failed on the provider: {session.error}")
        return session

    def decrypt(self, session: AlignmentSession, key: AlignmentKey, info: ServiceInfo) -> DecryptedResult:
        """Fetch and decrypt the result, then delete the session: the provider need not keep it."""
        self._progress(phase="decrypting")
        max_bytes = info.limits.max_ciphertext_bytes
        header, blobs = self.provider.alignment_result(session.session_id, max_blob_bytes=max_bytes)
        parts = decrypt_result(key.keys, header, blobs, max_bytes, self.per_fold)
        self.provider.delete_session(session.session_id)
        return DecryptedResult(parts, list(header.fold_sizes))

    def discard_session(self, session_id: str) -> None:
        """Delete a session the run could not finish; if the provider cannot be told now, its garbage
        collector reclaims the session once it has been idle for its TTL."""
        try:
            self.provider.delete_session(session_id)
        except ProviderError:
            pass

    def release_key(self, key: AlignmentKey) -> None:
        """Revoke the single-use key at the provider and forget its secret, whatever happened."""
        try:
            self.provider.revoke_key(key.stored.key_id)
        finally:
            self.keystore.forget(key.stored.key_id)

    def solve(
        self, embedded: Embedded, public: PublicTexts, result: DecryptedResult
    ) -> tuple[AffineMap, dict[str, Any]]:
        """The map, solved locally. The method only changes this step: X^T Y and 1^T Y (the paper's
        protocol), or their per-fold parts for methods that validate on held-out alignment data.
        Methods needing the provider's Y^T Y are refused by ClientSettings."""
        cfg = self.config
        x, scale = embedded.x, embedded.scale
        folds = None
        if self.per_fold:
            rows = fold_rows(public.corpus_size, x.shape[0] - public.corpus_size, len(result.parts))
            if [len(r) for r in rows] != result.fold_sizes:
                raise AlignmentError(
                    f"provider's folds have sizes {result.fold_sizes}, the shared partition {[len(r) for r in rows]}"
                )
            # xty was computed on x / scale: multiply back.
            folds = [
                SufficientStats.from_cross(x[r], xty * scale, y_sum)
                for r, (xty, y_sum) in zip(rows, result.parts, strict=True)
            ]
            stats = sum_stats(folds)
        else:
            xty, y_sum = result.parts[0]
            stats = SufficientStats.from_cross(x, xty * scale, y_sum)
        params: dict[str, Any] = {"lam": cfg.ridge_lambda} if cfg.map_method == "ridge" else {}
        return solve_method(cfg.map_method, stats, folds=folds, **{**params, **cfg.map_params})

    def save(
        self,
        info: ServiceInfo,
        parameter_set: str,
        public: PublicTexts,
        embedded: Embedded,
        affine: AffineMap,
        chosen: dict[str, Any],
        *,
        seconds: float,
        bytes_sent: int,
        bytes_received: int,
    ) -> StoredMap:
        cfg = self.config
        return self.maps.save(
            {
                "provider_url": self.provider.base_url,
                "head_id": cfg.head_id,
                "corpus_id": cfg.corpus_id,
                "corpus_sha256": public.corpus_sha256,
                "client_model_id": self.embedder.model_id,
                "provider_model_id": info.encoder_model_id,
                "parameter_set": parameter_set,
                "ridge_lambda": float(chosen.get("lambda", cfg.ridge_lambda)),
                "map_method": cfg.map_method,
                "map_params": {k: v for k, v in chosen.items() if k not in ("grid", "cv_losses")},
                "num_samples": int(embedded.x.shape[0]),
                "include_head_texts": cfg.include_head_texts,
                "created_at": datetime.now(UTC).isoformat(),
                "alignment_seconds": seconds,
                "bytes_sent": bytes_sent,
                "bytes_received": bytes_received,
            },
            affine,
        )
