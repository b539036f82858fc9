"""The client's half of a provider-held alignment (paper Algorithm 2): embed the public texts, upload
the embeddings, and let the provider solve the map and fold it into a head derived for this tenant.

What leaves: X_B, the client's embeddings of public texts (a linear surrogate of its encoder on public
text, the same thing the map reveals). What comes back: the derived head's id, and what the map
method chose (lambda). The agent never holds the map nor X^T Y_A; it stores a record naming the
derived head, and classifies Enc(x_B) against it. No key is needed: nothing is encrypted here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared_protocol.messages import AlignmentCreate, AlignmentSession, EmbeddingChunkHeader, MapHolder

from .alignment import AlignmentError, AlignmentRun, Embedded, PublicTexts
from .maps import StoredMap


def row_blocks(x: np.ndarray, rows: int, start: int, count: int) -> list[bytes]:
    """Blocks [start, start + count) of X, `rows` rows each, as little-endian float64 (the wire layout)."""
    return [
        np.ascontiguousarray(x[i * rows : (i + 1) * rows], dtype="<f8").tobytes() for i in range(start, start + count)
    ]


class ProviderHeldRun(AlignmentRun):
    """One provider-held alignment against one provider head, from public texts to a stored record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The provider validates on its own folds for the *_cv methods; no per-fold result is asked for.
        self.per_fold = False

    def run(self) -> StoredMap:
        t0 = time.perf_counter()
        sent0, recv0 = self.provider.bytes_sent, self.provider.bytes_received
        info = self.provider.info()
        public = self.fetch_texts(info)
        embedded = self.embed(public.texts)
        session = self.open_held_session(public, embedded)
        open_id: str | None = session.session_id
        try:
            session = self.upload_embeddings(session, embedded)
            session = self.compute(session)
            self.provider.delete_session(session.session_id)  # the derived head outlives its session
            open_id = None
        finally:
            if open_id is not None:
                self.discard_session(open_id)
        derived = self.check_derived_head(session, embedded)
        self._progress(phase="done")
        choice = session.map_choice
        cfg = self.config
        return self.maps.save_provider_held(
            {
                "provider_url": self.provider.base_url,
                "head_id": cfg.head_id,
                "corpus_id": cfg.corpus_id,
                "corpus_sha256": public.corpus_sha256,
                "client_model_id": self.embedder.model_id,
                "provider_model_id": info.encoder_model_id,
                "parameter_set": "",
                "ridge_lambda": float(choice.get("lambda", cfg.ridge_lambda)),
                "map_method": cfg.map_method,
                "map_params": dict(choice),
                "num_samples": int(embedded.x.shape[0]),
                "include_head_texts": cfg.include_head_texts,
                "source_dim": int(embedded.x.shape[1]),
                "target_dim": session.output_columns,
                "created_at": datetime.now(UTC).isoformat(),
                "alignment_seconds": time.perf_counter() - t0,
                "bytes_sent": self.provider.bytes_sent - sent0,
                "bytes_received": self.provider.bytes_received - recv0,
                "derived_head_id": derived,
            }
        )

    def open_held_session(self, public: PublicTexts, embedded: Embedded) -> AlignmentSession:
        cfg = self.config
        n_samples, dim = embedded.x.shape
        params: dict[str, float] = {"lam": cfg.ridge_lambda} if cfg.map_method == "ridge" else {}
        session = self.provider.create_alignment(
            AlignmentCreate(
                head_id=cfg.head_id,
                corpus_id=cfg.corpus_id,
                corpus_sha256=public.corpus_sha256,
                feature_dim=dim,
                include_head_texts=cfg.include_head_texts,
                client_model_id=self.embedder.model_id,
                map_holder=MapHolder.provider,
                map_method=cfg.map_method,
                map_params={**params, **{k: float(v) for k, v in cfg.map_params.items()}},
            )
        )
        self._on_session(session.session_id)  # recorded at once: a restarted agent deletes it
        if session.map_holder != MapHolder.provider:
            raise AlignmentError("the provider opened a client-held session for a provider-held alignment")
        if session.num_samples != n_samples:
            raise AlignmentError(f"provider expects {session.num_samples} samples, the client embedded {n_samples}")
        rows = session.samples_per_ciphertext
        if rows < 1 or -(-n_samples // rows) != session.num_ciphertexts:
            raise AlignmentError(
                f"provider expects {session.num_ciphertexts} blocks of {rows} rows for {n_samples} samples"
            )
        return session

    def upload_embeddings(self, session: AlignmentSession, embedded: Embedded) -> AlignmentSession:
        """Send X in row blocks, a few blocks per request."""
        per_request = self.config.chunk_ciphertexts
        total, rows = session.num_ciphertexts, session.samples_per_ciphertext
        self._progress(phase="uploading", total_ciphertexts=total, total_columns=session.output_columns)
        for start in range(0, total, per_request):
            count = min(per_request, total - start)
            blocks = row_blocks(embedded.x, rows, start, count)
            session = self.provider.upload_embeddings(
                session.session_id, EmbeddingChunkHeader(start=start, count=count), blocks
            )
            self._progress(uploaded_ciphertexts=session.received_ciphertexts)
        return session

    def check_derived_head(self, session: AlignmentSession, embedded: Embedded) -> str:
        """The derived head's id, once the provider describes it as a head of ours on our inputs."""
        if session.derived_head_id is None:
            raise AlignmentError("the provider finished the alignment without a derived head")
        head = self.provider.head(session.derived_head_id)
        if head.base_head_id != self.config.head_id or head.dim != embedded.x.shape[1]:
            raise AlignmentError(
                f"derived head {head.id!r} takes {head.dim} inputs from {head.base_head_id!r}; expected "
                f"{embedded.x.shape[1]} from {self.config.head_id!r}"
            )
        return head.id
