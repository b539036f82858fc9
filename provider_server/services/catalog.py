"""What the provider offers: heads (trained on its own data), public corpora, and who registered.

Training and corpus embedding are heavy (the provider's encoder runs over every text): corpus embedding
runs off the event loop, a training runs as a job in a process of its own (`services.training_jobs`).
The name checks run before that work and again, atomically, when storing."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from helix_datasets import LabelledSplit, load_split, load_texts, parse_labelled_jsonl
from helix_embeddings import Embedder
from shared_protocol.corpus import corpus_sha256
from shared_protocol.messages import CorpusCreate, HeadCreateFromDataset, HeadEvaluateRequest, MapHolder, OutputMode

from ..blobs import BlobStore
from ..clock import utcnow
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unknown, Unprocessable
from ..settings import ProviderSettings
from ..store import CorpusRecord, HeadRecord, KeyRecord, RecordExistsError, Store, TrainingReport
from .head_sets import head_parameter_sets
from .held_map import refuse_derived_base


@dataclass(frozen=True)
class TrainingOutcome:
    head: HeadRecord
    seconds: float


@dataclass(frozen=True)
class HeadTraining:
    """What to train: a head's name and task, its labelled data, the training knobs, and what its
    classify replies will reveal (the admin's policy for this head, fixed at creation)."""

    name: str
    task: str
    data: LabelledSplit
    in_distribution_texts: int
    regularization_c: float
    seed: int
    output_mode: OutputMode = OutputMode.logits
    map_holder: MapHolder = MapHolder.client


@dataclass(frozen=True)
class GivenHead:
    """A head whose weights the admin brings (logits = x @ weight + bias in the provider's encoder space),
    e.g. rows of an LLM's LM head; ``texts`` are published with it like a trained head's texts."""

    name: str
    task: str
    class_names: tuple[str, ...]
    weight: np.ndarray  # (dim, classes)
    bias: np.ndarray  # (classes,)
    texts: tuple[str, ...] = ()
    output_mode: OutputMode = OutputMode.logits
    map_holder: MapHolder = MapHolder.client


@dataclass(frozen=True)
class Evaluation:
    examples: int
    accuracy: float
    predictions: list[int]


class CatalogService:
    def __init__(
        self, store: Store, blobs: BlobStore, embedder: Callable[[], Embedder], settings: ProviderSettings
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._embedder = embedder
        self._settings = settings

    # -- heads ------------------------------------------------------------------------------------
    def list_heads(self, tenant_id: str | None = None) -> list[HeadRecord]:
        """Every head for the admin (None); for a tenant, the admin's heads and the tenant's own derived ones."""
        heads = self._store.list_heads()
        return heads if tenant_id is None else [h for h in heads if h.visible_to(tenant_id)]

    def parameter_sets(self, head: HeadRecord) -> list[str]:
        """The sets this head is evaluated under (`head_sets`)."""
        return head_parameter_sets(head, self._blobs, self._settings)

    def head(self, head_id: str, tenant_id: str | None = None) -> HeadRecord:
        """The head, for the admin (None) or a tenant that may see it: another tenant's derived head
        answers exactly like an unknown one."""
        head = self._store.get_head(head_id)
        if head is None or (tenant_id is not None and not head.visible_to(tenant_id)):
            raise Unknown("head", head_id)
        return head

    def delete_derived_head(self, head_id: str, tenant_id: str) -> None:
        """A tenant deletes one of its derived heads; the admin's heads are the admin's to delete."""
        head = self.head(head_id, tenant_id)
        if head.base_head_id is None:
            raise Forbidden(
                "forbidden", f"head {head_id!r} is the provider's; only heads derived for you can be deleted"
            )
        self._store.delete_head(head_id)

    def dataset_training(self, body: HeadCreateFromDataset) -> HeadTraining:
        """What to train for a head from a dataset folder's split (checked: the name is free, the data
        loads); the training itself is a job (`services.training_jobs`)."""
        self._ensure_new_head(body.name)
        data = self._split(body.dataset, body.split, body.max_examples, body.seed)
        return HeadTraining(
            body.name,
            body.task or body.dataset,
            data,
            body.in_distribution_texts,
            body.regularization_c,
            body.seed,
            body.output_mode,
            body.map_holder,
        )

    def upload_training(
        self,
        name: str,
        task: str,
        jsonl: bytes,
        class_names: list[str] | None,
        in_distribution_texts: int,
        regularization_c: float,
        seed: int,
        output_mode: OutputMode = OutputMode.logits,
        map_holder: MapHolder = MapHolder.client,
    ) -> HeadTraining:
        """What to train from labelled JSONL: one {"text", "label"} object per line (checked)."""
        self._ensure_new_head(name)
        try:
            data = parse_labelled_jsonl(jsonl.decode("utf-8").splitlines(), class_names, self._settings.max_classes)
        except UnicodeDecodeError:
            raise BadRequest("invalid_jsonl", "the upload is not UTF-8 text") from None
        except ValueError as exc:
            raise Unprocessable("invalid_jsonl", str(exc)) from None
        return HeadTraining(name, task, data, in_distribution_texts, regularization_c, seed, output_mode, map_holder)

    async def create_from_weights(self, given: GivenHead) -> TrainingOutcome:
        """Store a head with the given weights (nothing is trained); 422 unless they fit the encoder."""
        self._ensure_new_head(given.name)
        k = len(given.class_names)
        if not 2 <= k <= self._settings.max_classes or len(set(given.class_names)) != k:
            raise Unprocessable(
                "invalid_head", f"a head needs 2 to {self._settings.max_classes} distinct class names, got {k}"
            )
        if given.weight.ndim != 2 or given.weight.shape[1] != k or given.bias.shape != (k,):
            raise Unprocessable(
                "invalid_head",
                f"weight must be (dim, {k}) and bias ({k},) for {k} classes, "
                f"got {given.weight.shape} and {given.bias.shape}",
            )
        if not (np.isfinite(given.weight).all() and np.isfinite(given.bias).all()):
            raise Unprocessable("invalid_head", "weights and bias must be finite")
        return await run_in_threadpool(self._store_given, given)

    def _store_given(self, given: GivenHead) -> TrainingOutcome:
        t0 = time.perf_counter()
        emb = self._embedder()
        if given.weight.shape[0] != emb.dim:
            raise Unprocessable(
                "dimension_mismatch", f"weight has {given.weight.shape[0]} rows, the encoder embeds into {emb.dim}"
            )
        texts = list(given.texts)
        texts_emb = self._blobs.put_array(emb.embed(texts).astype(np.float64)) if texts else None
        head = HeadRecord(
            id=given.name,
            name=given.name,
            task=given.task,
            class_names=given.class_names,
            dim=emb.dim,
            num_classes=len(given.class_names),
            created_at=utcnow(),
            weights_blob=self._blobs.put_array(given.weight.astype(np.float64)),
            bias_blob=self._blobs.put_array(given.bias.astype(np.float64)),
            texts=given.texts,
            texts_embeddings_blob=texts_emb,
            encoder_model_id=emb.model_id,
            report=TrainingReport(train_examples=0, train_accuracy=0.0),
            output_mode=given.output_mode,
            map_holder=given.map_holder,
        )
        try:
            self._store.add_head(head)
        except RecordExistsError:
            raise head_exists(given.name) from None
        return TrainingOutcome(head=head, seconds=time.perf_counter() - t0)

    async def evaluate(self, head_id: str, body: HeadEvaluateRequest) -> Evaluation:
        head = self.head(head_id)
        refuse_derived_base(head)  # its inputs are a client's embeddings, which the provider cannot compute
        w, b = self._blobs.get_array(head.weights_blob), self._blobs.get_array(head.bias_blob)
        data = self._split(body.dataset, body.split, body.limit, body.seed)
        if len(data.class_names) != head.num_classes:
            raise Unprocessable(
                "class_mismatch",
                f"dataset has {len(data.class_names)} classes, head {head_id!r} has {head.num_classes}",
            )
        x = await run_in_threadpool(lambda: self._embedder().embed(data.texts).astype(np.float64))
        pred = np.argmax(x @ w + b, axis=1)
        return Evaluation(
            examples=len(data.texts), accuracy=float(np.mean(pred == np.array(data.labels))), predictions=pred.tolist()
        )

    def reference_logits(self, head_id: str, embeddings: list[list[float]]) -> np.ndarray:
        """Plaintext logits x @ W + b for embeddings in the provider's space (an operator's aid)."""
        head = self.head(head_id)
        w, b = self._blobs.get_array(head.weights_blob), self._blobs.get_array(head.bias_blob)
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != head.dim:
            raise Unprocessable("dimension_mismatch", f"embeddings must have {head.dim} columns")
        return x @ w + b  # type: ignore[no-any-return]

    def delete_head(self, head_id: str) -> None:
        if not self._store.delete_head(head_id):
            raise Unknown("head", head_id)

    def _ensure_new_head(self, name: str) -> None:
        if self._store.get_head(name) is not None:
            raise head_exists(name)

    def _split(self, dataset: str, split: str, limit: int | None, seed: int) -> LabelledSplit:
        try:
            return load_split(self._settings.datasets_dir, dataset, split, limit, seed, self._settings.max_classes)
        except FileNotFoundError as exc:
            raise NotFound("unknown_dataset", str(exc)) from None
        except ValueError as exc:
            raise Unprocessable("invalid_dataset", str(exc)) from None

    # -- corpora ----------------------------------------------------------------------------------
    def list_corpora(self) -> list[CorpusRecord]:
        return self._store.list_corpora()

    def corpus(self, corpus_id: str) -> CorpusRecord:
        corpus = self._store.get_corpus(corpus_id)
        if corpus is None:
            raise Unknown("corpus", corpus_id)
        return corpus

    def corpus_texts(self, corpus_id: str) -> tuple[CorpusRecord, list[str]]:
        corpus = self.corpus(corpus_id)
        texts: list[str] = json.loads(self._blobs.get(corpus.texts_blob))
        return corpus, texts

    async def create_corpus(self, body: CorpusCreate) -> CorpusRecord:
        self._ensure_new_corpus(body.name)
        if (body.texts is None) == (body.dataset is None):
            raise Unprocessable(
                "invalid_request", "give either 'texts' or 'dataset' (with 'file'), not both or neither"
            )
        if body.texts is not None:
            texts = body.texts[: body.limit] if body.limit else body.texts
        else:
            try:
                texts = load_texts(
                    self._settings.datasets_dir,
                    body.dataset or "",
                    body.file or "passages.jsonl",
                    body.limit,
                    body.seed,
                )
            except FileNotFoundError as exc:
                raise NotFound("unknown_dataset", str(exc)) from None
            except ValueError as exc:
                raise Unprocessable("invalid_dataset", str(exc)) from None
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise Unprocessable("invalid_corpus", "a corpus needs at least one text and no empty texts")
        limit = self._settings.max_alignment_samples
        if len(texts) > limit:
            raise Unprocessable("too_many_samples", f"{len(texts)} texts exceed the limit of {limit}")
        return await run_in_threadpool(self._embed_and_store, body.name, texts)

    def delete_corpus(self, corpus_id: str) -> None:
        if not self._store.delete_corpus(corpus_id):
            raise Unknown("corpus", corpus_id)

    def _ensure_new_corpus(self, name: str) -> None:
        if self._store.get_corpus(name) is not None:
            raise _corpus_exists(name)

    def _embed_and_store(self, name: str, texts: list[str]) -> CorpusRecord:
        emb = self._embedder()
        y = emb.embed(texts).astype(np.float64)
        corpus = CorpusRecord(
            id=name,
            name=name,
            size=len(texts),
            sha256=corpus_sha256(texts),
            created_at=utcnow(),
            texts_blob=self._blobs.put(json.dumps(texts, ensure_ascii=False).encode(), ".json"),
            embeddings_blob=self._blobs.put_array(y),
            encoder_model_id=emb.model_id,
        )
        try:
            self._store.add_corpus(corpus)
        except RecordExistsError:
            raise _corpus_exists(name) from None
        return corpus

    # -- clients ----------------------------------------------------------------------------------
    def clients(self) -> list[tuple[str, list[KeyRecord]]]:
        """Registered clients by name, each with its unrevoked keys."""
        by_client: dict[str, list[KeyRecord]] = defaultdict(list)
        for key in self._store.list_keys():
            by_client[key.client_name].append(key)
        return sorted(by_client.items())


def head_exists(name: str) -> Conflict:
    return Conflict("head_exists", f"a head named {name!r} already exists; delete it first")


def _corpus_exists(name: str) -> Conflict:
    return Conflict("corpus_exists", f"a corpus named {name!r} already exists")
