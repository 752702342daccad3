"""``seas run`` end to end on the embedded model with tiny sizes: one real SEAS round on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _seas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seas_operator.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=1200, env={**os.environ})


@pytest.mark.model
def test_one_real_round_then_resume(tmp_path, tiny_data):
    spec = {
        "apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "tiny"},
        "spec": {
            "rounds": 1,
            "target": {"model": "embedded:smollm2-135m-instruct"},
            "redTeam": {"model": "embedded:smollm2-135m-instruct"},
            "classifier": {"type": "refusal-match"},
            "attack": {"samplesPerSeed": 2, "responsesPerPrompt": 2, "maxSeeds": 4, "maxNewTokens": 16},
            "training": {"target": {"learningRate": 1e-3}, "redTeam": {"learningRate": 1e-3}, "batchSize": 2, "maxLength": 192, "maxPairs": 4},
            "pairs": {"helpfulPairs": 2, "refusalFallback": True},  # a tiny round may get no safe answer of its own
            "evaluation": {"maxNewTokens": 12, "knowledgeContexts": ["none", "false"]},
            "data": {"heldout": tiny_data("heldout_adversarial.jsonl", 6), "benign": tiny_data("benign.jsonl", 4),
                     "direct": tiny_data("direct.jsonl", 4), "contrast": tiny_data("contrast.jsonl", 3),
                     "knowledge": tiny_data("knowledge_qa.jsonl", 8)},
            "gates": {"maxTargetASR": 1.0},
        },
    }
    file = tmp_path / "tiny.yaml"
    file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"

    first = _seas("run", str(file), "--output", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["evolution"] == "tiny" and report["complete"] is True
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    for r in report["rounds"]:
        for figure, n in (("directASR", 4), ("adversarialASR", 6), ("sampledASR", 6), ("contrastRefusalRate", 3), ("benignRefusalRate", 4), ("qaAccuracy", 8)):
            assert r[figure]["n"] == n and 0.0 <= r[figure]["low"] <= r[figure]["rate"] <= r[figure]["high"] <= 1.0, (figure, r[figure])
        assert r["qaPerplexity"] >= 1.0
        assert 0.0 <= r["qaEntropy"] <= 1.3863  # ln 4: four choices
        assert r["seconds"] > 0
    assert report["rounds"][0]["redteamASR"]["n"] > 0
    assert report["rounds"][1]["regression"]["n"] == 10  # direct and adversarial items, paired with round 0
    assert report["rounds"][1]["accuracyChange"]["n"] == 8
    records = [json.loads(l) for l in (out / "r1" / "evaluate" / "records.jsonl").read_text().splitlines()]
    assert {r["set"] for r in records} == {"direct", "adversarial", "sampled", "contrast", "benign", "redteam", "knowledge", "knowledge-chat"}
    assert all(r["qaGenerationAccuracy"]["n"] == 8 and r["qaAccuracyNorm"]["n"] == 8 for r in report["rounds"])
    attack = json.loads((out / "r1" / "attack" / "result.json").read_text())
    assert sum(attack["goals"].values()) == 8  # every red-team prompt was checked for its goal
    one = report["rounds"][1]
    assert one["pairs"]["target"] > 0, "the tiny round produced no target pairs"
    train = json.loads((out / "r1" / "train-target" / "result.json").read_text())
    assert train["trained"] is True and train["loss"] is not None
    assert (out / "r1" / "train-target" / "model" / "model.safetensors").is_file()
    assert one["targetModel"] == train["model"]
    assert (out / "asr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 |" in (out / "report.md").read_text()
    records = [json.loads(l) for l in (out / "r1" / "attack" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 8 and len({r["id"] for r in records}) == 8
    assert all(resp["verdict"] in ("safe", "unsafe", "error") for r in records for resp in r["responses"])
    assert "r1/attack: started" in first.stderr

    # Run again on the same directory: nothing is recomputed.
    again = _seas("run", str(file), "--output", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "started" not in again.stderr
    assert again.stderr.count("skipped (already done)") == 6
    assert json.loads((out / "report.json").read_text())["rounds"] == report["rounds"]


def test_a_stage_that_cannot_load_its_model_fails_with_a_clear_message(tmp_path):
    """A stage that fails exits 1 with its log tail: a plain message, no traceback."""
    spec = {
        "apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "broken"},
        "spec": {"rounds": 1, "target": {"model": "/nonexistent/model"}, "redTeam": {"model": "/nonexistent/model"}},
    }
    file = tmp_path / "broken.yaml"
    file.write_text(yaml.safe_dump(spec))
    result = _seas("run", str(file), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert "stage r0/evaluate failed" in result.stderr
    assert "run the same command again" in result.stderr
    assert "cannot load model '/nonexistent/model'" in result.stderr
    assert "Traceback" not in result.stderr
