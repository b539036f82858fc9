"""One classification request through the agent: choose the map, check it fits, and classify with the
cached inference key, healing once when the provider no longer accepts that key."""

from __future__ import annotations

from dataclasses import dataclass

from helix_embeddings import Embedder
from helix_web.errors import ApiError, not_found
from shared_protocol.messages import HeadInfo

from .inference import Classification, ReplyMismatch, check_map, classify_texts
from .key_manager import InferenceKey, is_dead_key
from .maps import MapStore, StoredMap
from .provider_client import ProviderError
from .state import ClientState


@dataclass(frozen=True)
class Classified:
    head: HeadInfo  # the head asked for
    map: StoredMap
    result: Classification


def choose_map(maps: MapStore, provider_url: str, head_id: str, embedder: Embedder, map_id: str | None) -> StoredMap:
    """The requested map, or the newest one fitted for this head and embedder."""
    if map_id:
        stored = maps.get(map_id)
        if stored is None:
            raise not_found("map", map_id)
    else:
        stored = maps.latest_for(provider_url, head_id, embedder.model_id)
        if stored is None:
            raise ApiError(
                409,
                "no_alignment",
                f"no alignment map for head {head_id!r} and embedder {embedder.model_id!r}: POST /v1/alignments first",
            )
    if stored.meta.head_id != head_id:
        raise ApiError(409, "map_mismatch", f"map {stored.meta.map_id} was fitted for head {stored.meta.head_id!r}")
    return stored


def classify(state: ClientState, texts: list[str], head_id: str, map_id: str | None) -> Classified:
    """Raises ApiError for the agent's own refusals, MapMismatch and ProviderError for the rest."""
    head = state.cache.head(head_id)
    embedder = state.query_embedder()
    stored = choose_map(state.maps, state.provider.base_url, head_id, embedder, map_id)
    # A provider-held alignment is classified against the head derived for us (the map folded in).
    evaluated = state.cache.head(stored.meta.derived_head_id) if stored.meta.derived_head_id else head
    check_map(stored, embedder, evaluated)  # before any key is registered: a refusal changes nothing
    pset = state.inference_parameter_set(evaluated)
    max_bytes = state.cache.info().limits.max_ciphertext_bytes

    def forget_heads() -> None:
        state.cache.evict_head(head_id)
        state.cache.evict_head(evaluated.id)

    def attempt(key: InferenceKey) -> Classified:
        try:
            result = classify_texts(
                state.provider,
                embedder,
                key.keys,
                key.key_id,
                evaluated,
                stored,
                texts,
                state.settings.classify_batch_size,
                max_bytes,
            )
        except ProviderError as exc:
            if not is_dead_key(exc):
                forget_heads()  # a head may be gone or changed: look them up again next time
            raise
        except ReplyMismatch as exc:  # the head was replaced with another output mode
            forget_heads()
            raise ApiError(409, "head_changed", str(exc)) from None
        return Classified(head, stored, result)

    key = state.inference_keys.get(pset)
    try:
        return attempt(key)
    except ProviderError as exc:
        if not is_dead_key(exc):
            raise
        state.inference_keys.drop(key.key_id)  # revoked, expired or unknown there: register a new one, once
    return attempt(state.inference_keys.get(pset))
