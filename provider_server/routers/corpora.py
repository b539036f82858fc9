"""Public corpora: both parties embed exactly these texts, in this order, checked by hash."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from shared_protocol.messages import CorpusInfo, CorpusTexts

from .. import views
from ..deps import Catalog, require_tenant

router = APIRouter(prefix="/v1/corpora", tags=["corpora"], dependencies=[Depends(require_tenant)])


@router.get("", response_model=list[CorpusInfo])
def list_corpora(catalog: Catalog) -> list[CorpusInfo]:
    return [views.corpus_info(c) for c in catalog.list_corpora()]


@router.get("/{corpus_id}", response_model=CorpusInfo)
def get_corpus(corpus_id: str, catalog: Catalog) -> CorpusInfo:
    return views.corpus_info(catalog.corpus(corpus_id))


@router.get("/{corpus_id}/texts", response_model=CorpusTexts)
def corpus_texts(
    corpus_id: str, catalog: Catalog, offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=5000)
) -> CorpusTexts:
    corpus, texts = catalog.corpus_texts(corpus_id)
    return CorpusTexts(
        id=corpus.id, sha256=corpus.sha256, offset=offset, total=len(texts), texts=texts[offset : offset + limit]
    )
