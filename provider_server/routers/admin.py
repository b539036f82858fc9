"""Admin endpoints (bearer admin token): train heads on the provider's own data, manage corpora,
see registered clients. Training and corpus embedding run off the event loop."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from helix_datasets import LabelledSplit, load_split, load_texts, parse_labelled_jsonl
from helix_web.errors import ApiError, not_found
from shared_protocol.corpus import corpus_sha256
from shared_protocol.messages import (ClientRecord, CorpusCreate, CorpusInfo, HeadCreateFromDataset, HeadEvaluateRequest,
                                      HeadEvaluateResponse, HeadTrainingReport, Identifier, ReferenceLogitsRequest,
                                      ReferenceLogitsResponse)

from ..db import iso, utcnow
from ..deps import State, require_admin
from ..state import ProviderState
from ..training import sample_texts, train_logistic_head
from .corpora import corpus_info
from .heads import head_info
from .keys import key_info

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _train_and_store(state: ProviderState, name: str, task: str, data: LabelledSplit, in_dist: int, c: float,
                     seed: int) -> HeadTrainingReport:
    t0 = time.perf_counter()
    emb = state.embedder()
    x = emb.embed(data.texts).astype(np.float64)
    trained = train_logistic_head(x, data.labels, len(data.class_names), c=c, seed=seed)
    texts = sample_texts(data.texts, in_dist, seed)
    texts_emb = state.blobs.put_array(emb.embed(texts).astype(np.float64)) if texts else None
    row = {
        "id": name, "name": name, "task": task, "class_names": data.class_names, "dim": int(x.shape[1]),
        "num_classes": len(data.class_names), "created_at": iso(utcnow()),
        "weights_blob": state.blobs.put_array(trained.weight), "bias_blob": state.blobs.put_array(trained.bias),
        "texts": texts, "texts_embeddings_blob": texts_emb, "encoder_model_id": emb.model_id,
        "report": {"train_examples": len(data.texts), "train_accuracy": trained.train_accuracy},
    }
    if state.repo.get_head(name) is not None:
        raise ApiError(409, "head_exists", f"a head named {name!r} already exists; delete it first")
    state.repo.add_head(row)
    return HeadTrainingReport(head=head_info(row), train_examples=len(data.texts), train_accuracy=trained.train_accuracy,
                              seconds=time.perf_counter() - t0)


@router.get("/heads", response_model=list[HeadTrainingReport])
def list_heads(state: State) -> list[HeadTrainingReport]:
    return [HeadTrainingReport(head=head_info(r), train_examples=r["report"]["train_examples"],
                               train_accuracy=r["report"]["train_accuracy"], seconds=0.0) for r in state.repo.list_heads()]


@router.post("/heads", response_model=HeadTrainingReport, status_code=201)
async def create_head(body: HeadCreateFromDataset, state: State) -> HeadTrainingReport:
    if state.repo.get_head(body.name) is not None:
        raise ApiError(409, "head_exists", f"a head named {body.name!r} already exists; delete it first")
    try:
        data = load_split(state.settings.datasets_dir, body.dataset, body.split, body.max_examples, body.seed)
    except FileNotFoundError as exc:
        raise ApiError(404, "unknown_dataset", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "invalid_dataset", str(exc)) from None
    return await run_in_threadpool(_train_and_store, state, body.name, body.task or body.dataset, data,
                                   body.in_distribution_texts, body.regularization_c, body.seed)


@router.post("/heads/upload", response_model=HeadTrainingReport, status_code=201)
async def upload_head(request: Request, state: State, name: Identifier = Query(...), task: str = Query("custom"),
                      class_names: str | None = Query(None, description="comma-separated, in label order"),
                      in_distribution_texts: int = Query(64, ge=0, le=128),
                      regularization_c: float = Query(1.0, gt=0), seed: int = 0) -> HeadTrainingReport:
    """Train from a labelled JSONL upload: one {"text", "label"} object per line."""
    if state.repo.get_head(name) is not None:
        raise ApiError(409, "head_exists", f"a head named {name!r} already exists; delete it first")
    raw = await request.body()
    try:
        lines = raw.decode("utf-8").splitlines()
        data = parse_labelled_jsonl(lines, class_names.split(",") if class_names else None)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_jsonl", "the upload is not UTF-8 text") from None
    except ValueError as exc:
        raise ApiError(422, "invalid_jsonl", str(exc)) from None
    return await run_in_threadpool(_train_and_store, state, name, task, data, in_distribution_texts, regularization_c, seed)


def _head_params(state: ProviderState, head_id: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    row = state.repo.get_head(head_id)
    if row is None:
        raise not_found("head", head_id)
    return row, state.blobs.get_array(row["weights_blob"]), state.blobs.get_array(row["bias_blob"])


@router.post("/heads/{head_id}/evaluate", response_model=HeadEvaluateResponse)
async def evaluate_head(head_id: str, body: HeadEvaluateRequest, state: State) -> HeadEvaluateResponse:
    row, w, b = _head_params(state, head_id)
    try:
        data = load_split(state.settings.datasets_dir, body.dataset, body.split, body.limit, body.seed)
    except FileNotFoundError as exc:
        raise ApiError(404, "unknown_dataset", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "invalid_dataset", str(exc)) from None
    if len(data.class_names) != row["num_classes"]:
        raise ApiError(422, "class_mismatch", f"dataset has {len(data.class_names)} classes, head {head_id!r} has {row['num_classes']}")
    x = await run_in_threadpool(lambda: state.embedder().embed(data.texts).astype(np.float64))
    pred = np.argmax(x @ w + b, axis=1)
    return HeadEvaluateResponse(head_id=head_id, examples=len(data.texts), accuracy=float(np.mean(pred == np.array(data.labels))),
                                predictions=pred.tolist())


@router.post("/heads/{head_id}/reference-logits", response_model=ReferenceLogitsResponse)
def reference_logits(head_id: str, body: ReferenceLogitsRequest, state: State) -> ReferenceLogitsResponse:
    row, w, b = _head_params(state, head_id)
    x = np.asarray(body.embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != row["dim"]:
        raise ApiError(422, "dimension_mismatch", f"embeddings must have {row['dim']} columns")
    return ReferenceLogitsResponse(head_id=head_id, logits=(x @ w + b).tolist())


@router.delete("/heads/{head_id}", status_code=204)
def delete_head(head_id: str, state: State) -> None:
    if not state.repo.delete_head(head_id):
        raise not_found("head", head_id)


def _add_corpus(state: ProviderState, name: str, texts: list[str]) -> dict[str, Any]:
    emb = state.embedder()
    y = emb.embed(texts).astype(np.float64)
    row = {"id": name, "name": name, "size": len(texts), "sha256": corpus_sha256(texts), "created_at": iso(utcnow()),
           "texts_blob": state.blobs.put(json.dumps(texts, ensure_ascii=False).encode(), ".json"),
           "embeddings_blob": state.blobs.put_array(y), "encoder_model_id": emb.model_id}
    if state.repo.get_corpus(name) is not None:
        raise ApiError(409, "corpus_exists", f"a corpus named {name!r} already exists")
    state.repo.add_corpus(row)
    return row


@router.post("/corpora", response_model=CorpusInfo, status_code=201)
async def create_corpus(body: CorpusCreate, state: State) -> CorpusInfo:
    if state.repo.get_corpus(body.name) is not None:
        raise ApiError(409, "corpus_exists", f"a corpus named {body.name!r} already exists")
    if (body.texts is None) == (body.dataset is None):
        raise ApiError(422, "invalid_request", "give either 'texts' or 'dataset' (with 'file'), not both or neither")
    if body.texts is not None:
        texts = body.texts[: body.limit] if body.limit else body.texts
    else:
        try:
            texts = load_texts(state.settings.datasets_dir, body.dataset or "", body.file or "passages.jsonl", body.limit, body.seed)
        except FileNotFoundError as exc:
            raise ApiError(404, "unknown_dataset", str(exc)) from None
        except ValueError as exc:
            raise ApiError(422, "invalid_dataset", str(exc)) from None
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ApiError(422, "invalid_corpus", "a corpus needs at least one text and no empty texts")
    if len(texts) > state.settings.max_alignment_samples:
        raise ApiError(422, "too_many_samples", f"{len(texts)} texts exceed the limit of {state.settings.max_alignment_samples}")
    row = await run_in_threadpool(_add_corpus, state, body.name, texts)
    return corpus_info(row)


@router.delete("/corpora/{corpus_id}", status_code=204)
def delete_corpus(corpus_id: str, state: State) -> None:
    if not state.repo.delete_corpus(corpus_id):
        raise not_found("corpus", corpus_id)


@router.get("/clients", response_model=list[ClientRecord])
def list_clients(state: State) -> list[ClientRecord]:
    by_client: dict[str, list[Any]] = defaultdict(list)
    for row in state.repo.list_keys():
        by_client[row["client_name"]].append(key_info(row))
    return [ClientRecord(client_name=name, keys=keys) for name, keys in sorted(by_client.items())]


