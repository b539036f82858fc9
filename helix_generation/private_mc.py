"""Private multiple choice: a client answers MMLU through a provider LLM's answer-letter head, encrypted.

The provider publishes the rows of its LLM's LM head for " A" .. " D" (:mod:`.answer_head`) as a head over
its last-token embedding, and a public corpus of prompts. A client whose own LLM is a different one aligns
through the existing secure alignment (its last-token states mapped into the provider's space), then sends
each question's mapped state encrypted: the provider scores the four letters without seeing the question.

Measured on the same questions:

* *encrypted*: through the real client agent and provider daemons (``POST /v1/classify``, one question per
  request), with the per-question latency the agent reports (embedding, and encrypt + provider + decrypt);
* *plaintext stitched*: the same map method solved in the clear from the same texts, and the head in the
  clear, in this process. The encrypted path should make the same predictions with scores within the
  HE noise (~1e-6 per score from classify, plus what the alignment's encryption changes in the map);
* *native*: each model's own letter scores on its own state (the lm-eval-harness log-likelihood form).

The alignment corpus is public prompts embedded the same way on both sides. By default: zero-shot MMLU
prompts of test questions *other* than the evaluated ones (and other than exact duplicates of them), without
answers: the states the map must carry are those at the end of such a prompt ("Answer:"), and no label is
used anywhere. ``corpus="alpaca"`` uses Alpaca instruction prompts instead (public, but another distribution).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from helix_alignment import SufficientStats
from helix_alignment.methods import METHODS, solve_method, sum_stats
from helix_embeddings import Embedder, load_embedder
from helix_embeddings.cache import text_key
from helix_embeddings.vector_store import VectorStore
from shared_protocol.folds import fold_rows

from .answer_head import DEFAULT_MAX_LENGTH, AnswerHead, answer_head, last_token_spec
from .data import LETTERS, datasets_root, load_alpaca, load_mmlu, mmlu_prompt
from .models import load_causal_lm

CORPORA = ("mmlu", "alpaca")


@dataclass(frozen=True)
class PrivateMcConfig:
    provider_model: str  # causal LM spec whose answer head the provider publishes
    client_model: str  # causal LM spec the client embeds with
    questions: int = 100
    seed: int = 0
    corpus: str = "mmlu"
    corpus_size: int = 2000
    method: str = "ridge_scaled"
    max_length: int = DEFAULT_MAX_LENGTH
    head_name: str = "mmlu-letters"
    corpus_name: str = "mmlu-prompts"

    @property
    def provider_embedder(self) -> str:
        return last_token_spec(self.provider_model, self.max_length)

    @property
    def client_embedder(self) -> str:
        return last_token_spec(self.client_model, self.max_length)


def min_corpus_size(client_dim: int) -> int:
    """The provider refuses alignments of fewer than 2 (D + 1) samples for a client dimension D (the result
    reveals D + 1 linear functionals of each of its embedding columns): 1,154 for SmolLM2, 1,282 for Gemma-3."""
    return 2 * (client_dim + 1)


def alignment_corpus(cfg: PrivateMcConfig, root: Path, evaluated: set[str]) -> list[str]:
    """The public alignment texts (see the module docstring), drawn with the config's seed."""
    if cfg.corpus == "alpaca":
        return [r.prompt for r in load_alpaca(root, "train", cfg.corpus_size)]
    if cfg.corpus != "mmlu":
        raise ValueError(f"unknown corpus {cfg.corpus!r}; expected one of {CORPORA}")
    pool = sorted({p for p in (mmlu_prompt(q) for q in load_mmlu(root, "test", None)) if p not in evaluated})
    if cfg.corpus_size > len(pool):
        raise ValueError(f"only {len(pool)} MMLU prompts are left for the corpus, {cfg.corpus_size} asked")
    return random.Random(cfg.seed + 1).sample(pool, cfg.corpus_size)


def _check(resp: httpx.Response, status: int) -> Any:
    if resp.status_code != status:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else None


def publish(admin: httpx.Client, cfg: PrivateMcConfig, head: AnswerHead, corpus: list[str]) -> None:
    """The provider's side: its answer head (raw weights) and the public corpus, through the admin API."""
    body = {
        "name": cfg.head_name,
        "task": f"mmlu answer letters of {head.model}",
        "class_names": list(head.letters),
        "weight": head.weight.tolist(),
        "bias": head.bias.tolist(),
    }
    _check(admin.post("/v1/admin/heads/weights", json=body), 201)
    _check(admin.post("/v1/admin/corpora", json={"name": cfg.corpus_name, "texts": corpus}), 201)


def align(agent: httpx.Client, cfg: PrivateMcConfig, deadline_s: float = 3600.0) -> dict[str, Any]:
    """Secure alignment through the client agent; returns the stored map's metadata."""
    request = {
        "head_id": cfg.head_name,
        "corpus_id": cfg.corpus_name,
        "map_method": cfg.method,
        "include_head_texts": False,
    }
    job = _check(agent.post("/v1/alignments", json=request), 202)
    end = time.monotonic() + deadline_s
    while job["state"] == "running":
        if time.monotonic() > end:
            raise TimeoutError(f"alignment {job['job_id']} still running after {deadline_s} s")
        time.sleep(0.5)  # the agent offers no push: poll the job's status
        job = _check(agent.get(f"/v1/alignments/{job['job_id']}"), 200)
    if job["state"] != "done":
        raise RuntimeError(f"alignment failed: {job.get('error')}")
    meta: dict[str, Any] = _check(agent.get(f"/v1/maps/{job['map_id']}"), 200)
    return meta


@dataclass(frozen=True)
class EncryptedAnswers:
    scores: np.ndarray  # (questions, letters), decrypted by the agent
    seconds: np.ndarray  # (questions,) the agent's whole classify (embedding included)
    he_seconds: np.ndarray  # (questions,) encrypt + provider + decrypt
    wall_seconds: np.ndarray  # (questions,) as the caller of the agent sees it
    bytes_sent: int
    bytes_received: int


def classify_encrypted(agent: httpx.Client, head_id: str, prompts: list[str], warmup: str) -> EncryptedAnswers:
    """One question per request, as a client asking one question at a time would. ``warmup`` (a public text)
    is classified first and not counted: it loads the agent's embedder and registers its inference key."""
    _check(agent.post("/v1/classify", json={"head_id": head_id, "texts": [warmup]}), 200)
    scores, seconds, he, wall = [], [], [], []
    sent = received = 0
    for prompt in prompts:
        t0 = time.perf_counter()
        body = _check(agent.post("/v1/classify", json={"head_id": head_id, "texts": [prompt]}), 200)
        wall.append(time.perf_counter() - t0)
        result = body["results"][0]
        scores.append(result["logits"])
        seconds.append(body["latency_ms"] / 1e3)
        he.append(body["he_latency_ms"] / 1e3)
        sent += body["bytes_sent"]
        received += body["bytes_received"]
    return EncryptedAnswers(
        np.asarray(scores, dtype=np.float64), np.asarray(seconds), np.asarray(he), np.asarray(wall), sent, received
    )


def plaintext_map(method: str, x: np.ndarray, y: np.ndarray, folds: int) -> tuple[Any, dict[str, Any]]:
    """The map the agent solves, solved from the plaintext X and Y (same method, same validation folds)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if "fold_xty" in METHODS[method].needs:
        parts = [SufficientStats.from_data(x[r], y[r]) for r in fold_rows(len(x), 0, folds)]
        return solve_method(method, sum_stats(parts), folds=parts)
    return solve_method(method, SufficientStats.from_data(x, y))


@dataclass(frozen=True)
class Embedded:
    corpus: np.ndarray  # float32, as the embedder returned it
    questions: np.ndarray
    seconds: float


def embed(embedder: Embedder, corpus: list[str], prompts: list[str]) -> Embedded:
    t0 = time.perf_counter()
    c, q = embedder.embed(corpus), embedder.embed(prompts)
    return Embedded(c, q, time.perf_counter() - t0)


def seed_cache(directory: Path, model_id: str, texts: list[str], vectors: np.ndarray) -> None:
    """Put ``texts``' vectors into a daemon's embedding cache (content-addressed by model id and text), so it
    does not embed the corpus a second time; the vectors are the ones the same embedder spec gives."""
    VectorStore(directory).put_many(model_id, {text_key(t): v for t, v in zip(texts, vectors, strict=True)})


def _summary(values: np.ndarray) -> dict[str, float]:
    return {
        "mean_ms": float(np.mean(values) * 1e3),
        "p50_ms": float(np.percentile(values, 50) * 1e3),
        "p95_ms": float(np.percentile(values, 95) * 1e3),
    }


def _accuracy(pred: np.ndarray, answers: np.ndarray) -> float:
    return float(np.mean(pred == answers))


def run_private_mc(
    cfg: PrivateMcConfig,
    admin: httpx.Client,
    agent: httpx.Client,
    *,
    cache_dir: Path | None = None,
    daemon_caches: tuple[Path, Path] | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """The whole measurement against a running provider (``admin``: its admin API; its encoder must be
    ``cfg.provider_embedder``) and a client agent (``agent``; embedder ``cfg.client_embedder``) connected
    to it. ``cache_dir`` caches this process's own embeddings (the plaintext reference) between runs.

    ``daemon_caches`` (the provider's and the agent's embedding-cache directories): seed them with the
    *corpus* vectors computed here, so that each corpus text is embedded once per model instead of twice
    (LLM embedding dominates the run on a small machine). The questions are never seeded: the agent embeds
    each one itself, and that is the embedding latency reported."""
    root = datasets_root()
    questions = load_mmlu(root, "test", cfg.questions, cfg.seed)
    prompts = [mmlu_prompt(q) for q in questions]
    answers = np.array([q.answer for q in questions])
    corpus = alignment_corpus(cfg, root, set(prompts))
    log(f"{len(questions)} questions, corpus {cfg.corpus} of {len(corpus)} prompts")

    heads: list[AnswerHead] = []
    for spec in (cfg.provider_model, cfg.client_model):
        lm = load_causal_lm(spec)
        heads.append(answer_head(lm, LETTERS))
        del lm
    head_p, head_c = heads
    if len(corpus) < min_corpus_size(head_c.weight.shape[0]):
        raise ValueError(
            f"a corpus of {len(corpus)} texts is too small for a {head_c.weight.shape[0]}-d client: the provider "
            f"needs at least {min_corpus_size(head_c.weight.shape[0])} (use --corpus-size)"
        )

    def embedder(spec: str) -> Embedder:
        return load_embedder(spec, cache_dir / "embeddings" if cache_dir is not None else None)

    emb_p, emb_c = embedder(cfg.provider_embedder), embedder(cfg.client_embedder)
    y = embed(emb_p, corpus, prompts)
    log(f"provider-side embeddings in this process: {y.seconds:.0f} s")
    x = embed(emb_c, corpus, prompts)
    log(f"client-side embeddings in this process: {x.seconds:.0f} s")
    if daemon_caches is not None:
        seed_cache(daemon_caches[0], emb_p.model_id, corpus, y.corpus)
        seed_cache(daemon_caches[1], emb_c.model_id, corpus, x.corpus)

    t0 = time.perf_counter()
    publish(admin, cfg, head_p, corpus)
    publish_seconds = time.perf_counter() - t0
    log(f"provider published head and corpus in {publish_seconds:.0f} s")
    t0 = time.perf_counter()
    meta = align(agent, cfg)
    align_seconds = time.perf_counter() - t0
    log(f"secure alignment in {align_seconds:.0f} s ({meta['map_params']})")
    if meta["provider_model_id"] != emb_p.model_id or meta["client_model_id"] != emb_c.model_id:
        raise RuntimeError(f"the daemons embed with {meta['provider_model_id']} / {meta['client_model_id']}")
    enc = classify_encrypted(agent, cfg.head_name, prompts, corpus[0])
    log(f"encrypted classify: {len(prompts)} questions, he p50 {np.median(enc.he_seconds) * 1e3:.0f} ms")

    folds = int(meta["map_params"].get("folds") or 0)
    amap, chosen = plaintext_map(cfg.method, x.corpus, y.corpus, folds)
    xq, yq = x.questions.astype(np.float64), y.questions.astype(np.float64)
    plain = head_p.scores(amap.apply(xq))
    native_p, native_c = head_p.scores(yq), head_c.scores(xq)
    pred = {name: np.argmax(s, axis=1) for name, s in (("enc", enc.scores), ("plain", plain))}
    pred_p, pred_c = np.argmax(native_p, axis=1), np.argmax(native_c, axis=1)
    systems = {
        "encrypted": pred["enc"],
        "plaintext_stitched": pred["plain"],
        "provider_native": pred_p,
        "client_native": pred_c,
    }
    embedding = enc.seconds - enc.he_seconds
    return {
        "config": asdict(cfg),
        "provider_embedder": emb_p.model_id,
        "client_embedder": emb_c.model_id,
        "answer_token_ids": {"provider": list(head_p.token_ids), "client": list(head_c.token_ids)},
        "questions": len(questions),
        "corpus_texts": len(corpus),
        "daemon_caches_seeded_with_corpus": daemon_caches is not None,
        "accuracy": {name: _accuracy(p, answers) for name, p in systems.items()},
        "predicted_letter_counts": {name: np.bincount(p, minlength=4).tolist() for name, p in systems.items()},
        "encrypted_equals_plaintext": float(np.mean(pred["enc"] == pred["plain"])),
        "max_abs_score_difference": float(np.max(np.abs(enc.scores - plain))),
        "stitched_agrees_with_provider_native": float(np.mean(pred["plain"] == pred_p)),
        "map": {
            "method": cfg.method,
            "agent": dict(meta["map_params"]),
            "plaintext": {k: v for k, v in chosen.items() if k not in ("grid", "cv_losses")},
            "mapped_state_cosine": _mean_cosine(amap.apply(xq), yq),
        },
        "latency_per_question": {
            "embedding": _summary(embedding),
            "encrypt_provider_decrypt": _summary(enc.he_seconds),
            "agent_total": _summary(enc.seconds),
            "rest_wall": _summary(enc.wall_seconds),
        },
        "bytes_per_question": {
            "sent": enc.bytes_sent / len(prompts),
            "received": enc.bytes_received / len(prompts),
        },
        "setup_seconds": {
            "publish_head_and_corpus": publish_seconds,
            "secure_alignment": align_seconds,
            "alignment_reported_by_agent": float(meta["alignment_seconds"]),
        },
        "predictions": {"answers": answers.tolist(), **{name: p.tolist() for name, p in systems.items()}},
        "scores": {"encrypted": enc.scores.tolist(), "plaintext_stitched": plain.tolist()},
    }


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(num / np.where(den > 0, den, 1.0)))
