"""Admin (bearer admin token): add and delete public corpora, see registered clients."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shared_protocol.messages import ClientRecord, CorpusCreate, CorpusInfo

from .. import views
from ..deps import Catalog, require_admin

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/corpora", response_model=CorpusInfo, status_code=201)
async def create_corpus(body: CorpusCreate, catalog: Catalog) -> CorpusInfo:
    return views.corpus_info(await catalog.create_corpus(body))


@router.delete("/corpora/{corpus_id}", status_code=204)
def delete_corpus(corpus_id: str, catalog: Catalog) -> None:
    catalog.delete_corpus(corpus_id)


@router.get("/clients", response_model=list[ClientRecord])
def list_clients(catalog: Catalog) -> list[ClientRecord]:
    return views.client_records(catalog.clients())
