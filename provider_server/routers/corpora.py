"""Public corpora: both parties embed exactly these texts, in this order, checked by hash."""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query

from helix_web.errors import not_found
from shared_protocol.messages import CorpusInfo, CorpusTexts

from ..db import parse_dt
from ..deps import State

router = APIRouter(prefix="/v1/corpora", tags=["corpora"])


def corpus_info(row: dict[str, Any]) -> CorpusInfo:
    return CorpusInfo(id=row["id"], name=row["name"], size=row["size"], sha256=row["sha256"],
                      created_at=parse_dt(row["created_at"]))


@router.get("", response_model=list[CorpusInfo])
def list_corpora(state: State) -> list[CorpusInfo]:
    return [corpus_info(r) for r in state.repo.list_corpora()]


@router.get("/{corpus_id}", response_model=CorpusInfo)
def get_corpus(corpus_id: str, state: State) -> CorpusInfo:
    row = state.repo.get_corpus(corpus_id)
    if row is None:
        raise not_found("corpus", corpus_id)
    return corpus_info(row)


@router.get("/{corpus_id}/texts", response_model=CorpusTexts)
def corpus_texts(corpus_id: str, state: State, offset: int = Query(0, ge=0),
                 limit: int = Query(1000, ge=1, le=5000)) -> CorpusTexts:
    row = state.repo.get_corpus(corpus_id)
    if row is None:
        raise not_found("corpus", corpus_id)
    texts = json.loads(state.blobs.get(row["texts_blob"]))
    return CorpusTexts(id=corpus_id, sha256=row["sha256"], offset=offset, total=len(texts), texts=texts[offset : offset + limit])
