"""The initialization stage: prompt/completion rows, loss on the completion only, no seed shown in another seed's prompt."""

from __future__ import annotations

import json

import pytest

from seas_runtime.contract import InitializeConfig
from seas_runtime.data import load
from seas_runtime.progress import Progress
from seas_runtime.settings import InitializationSpec, ModelRef, TrainingSpec
from seas_runtime.stages.initialize import run, sft_examples


def test_rows_are_prompt_completion_and_never_show_a_seed():
    seeds = load("seeds")
    rows = sft_examples(seeds)
    assert len(rows) == len(seeds)
    for row, seed in zip(rows, seeds):
        assert set(row) == {"prompt", "completion"}
        assert row["completion"] == [{"role": "assistant", "content": seed.prompt}]
        (turn,) = row["prompt"]
        assert turn["role"] == "user" and "Example:" not in turn["content"]
        assert not any(other.prompt in turn["content"] for other in seeds)  # nothing to copy verbatim


@pytest.mark.model
def test_initialization_trains_on_completions_and_saves_a_model(tmp_path, tiny_data):
    cfg = InitializeConfig(evolution="t", round=0, outputDir=str(tmp_path / "init"), redTeam=ModelRef(model="embedded:smollm2-135m-instruct", dtype="float32"),
                           seeds=tiny_data("seeds.jsonl", 4), initialization=InitializationSpec(enabled=True, epochs=1, learningRate=1e-4),
                           training=TrainingSpec(batchSize=2, maxLength=128))
    result = run(cfg, Progress(stream=open(tmp_path / "progress.jsonl", "w")))
    assert result.examples == 4 and result.loss is not None and result.loss > 0
    assert (tmp_path / "init" / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "init" / "model" / "config.json").read_text())["model_type"] == "llama"
