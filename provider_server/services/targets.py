"""The provider's side of an alignment: its embeddings Y of the session's samples (the corpus, then
the head's published texts if included), shared by the client-held and the provider-held computation."""

from __future__ import annotations

import numpy as np

from ..blobs import BlobStore
from ..errors import Conflict
from ..store import HeadRecord, SessionRecord, Store


def session_targets(store: Store, blobs: BlobStore, session: SessionRecord) -> tuple[np.ndarray, int, HeadRecord]:
    """(Y over the session's samples, the corpus size, the head); Conflict if either record is gone or
    the samples no longer match the session."""
    corpus = store.get_corpus(session.corpus_id)
    head = store.get_head(session.head_id)
    if corpus is None or head is None:
        raise Conflict("session_orphaned", "the session's corpus or head was deleted")
    y = blobs.get_array(corpus.embeddings_blob)
    corpus_size = y.shape[0]
    if session.include_head_texts and head.texts and head.texts_embeddings_blob:
        y = np.vstack([y, blobs.get_array(head.texts_embeddings_blob)])
    if y.shape[0] != session.num_samples:
        raise Conflict("session_orphaned", "the corpus changed since the session was created")
    return y, corpus_size, head
