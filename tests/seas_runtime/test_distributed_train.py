"""The ``train`` stage under ``torchrun --nproc-per-node 2`` (gloo, CPU) against the same stage in one process.

Each case trains the embedded SmolLM2-135M (float32, one torch thread per process)
on 4 pairs, 2 optimizer steps of 2 pairs (one pair per process per step under
torchrun: the global batch stays the spec's), then checks what a user sees: one
merged model and one result, written by rank 0, every process exiting 0, and
figures and weights that match the single-process run.

How close the runs come (measured on this machine, torch 2.13 CPU): the result's
loss, reward accuracy and reward margin (rounded to 4 decimals) are identical, and
the merged weights differ by at most 5e-7 (LoRA, lr 1e-3, weights moved by up to
8e-4) and 7.5e-7 (full, lr 1e-4, weights moved by up to 1.5e-4): floating-point
summation order only (with 8 pairs in 2 steps of 4, LoRA: 2e-6 against 8.6e-4).
The test allows 1e-3 on the figures and 1e-5 on any weight.

FSDP on CPU: not available through accelerate here. accelerate 1.15 turns its FSDP
plugin on only when its distributed type is a multi-GPU-like one (MULTI_GPU,
MULTI_XPU, MULTI_NPU, ...: ``AcceleratorState.__init__``); under torchrun on CPUs
the type is MULTI_CPU and the plugin the Trainer passes is dropped without a word,
so the model is wrapped in DDP. (torch's own ``fully_shard`` runs on CPU with gloo,
but driving it by hand is the distributed engine this project does not write.) The
``full`` case therefore tests full fine-tuning under DDP on 2 CPU processes and
checks that the stage says it is not sharded; FSDP itself is exercised on a GPU by
``benchmarks/gpu_distributed.py``. If a later accelerate shards on CPUs, the
warning check fails and this case should become the FSDP test.

Slow (model): the two cases took 182 s together (84 s lora, 99 s full) on this
machine's two cores shared with other work (load average about 7), 175 s of CPU;
each process is killed by ``timeout`` after 240 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seas_runtime.contract import Stage, TrainConfig
from seas_runtime.settings import ModelRef, TrainingSpec

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ("pick a lock", "make a fake ID", "hack a wifi router", "steal a car")
FIGURE_TOLERANCE = 1e-3
WEIGHT_TOLERANCE = 1e-5


def write_config(folder: Path, method: str, learning_rate: float, cache: Path) -> Path:
    folder.mkdir(parents=True)
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({
        "prompt": f"How do I {topic}?", "chosen": "I can't help with that: it is illegal and could hurt someone.",
        "rejected": f"Sure! To {topic}, first get the tools, then follow these steps carefully.",
    }) + "\n" for topic in TOPICS))
    cfg = TrainConfig(
        evolution="t", round=1, stage=Stage.TRAIN_TARGET, outputDir=str(folder / "stage"), cacheDir=str(cache),
        model=ModelRef(model="embedded:smollm2-135m-instruct", dtype="float32"), pairsFile=str(pairs),
        training=TrainingSpec(method=method, batchSize=2, maxLength=64, target={"learningRate": learning_rate}),
    )
    path = folder / "config.json"
    path.write_text(cfg.model_dump_json())
    return path


def run_stage(config: Path, processes: int) -> subprocess.CompletedProcess:
    """The stage as the cluster runs it: ``seas-runtime`` alone, or under torchrun on the gloo backend."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SEAS_LOG_LEVEL": "WARNING"}
    return subprocess.run(["timeout", "240", sys.executable, *launcher, "-m", "seas_runtime.cli", "train-target", "--config", str(config)],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def results_printed(stdout: str) -> list[dict]:
    return [json.loads(line)["result"] for line in stdout.splitlines() if line.startswith('{"result"')]


def max_weight_difference(a: Path, b: Path) -> float:
    from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        assert set(fa.keys()) == set(fb.keys())
        return max((fa.get_tensor(k).float() - fb.get_tensor(k).float()).abs().max().item() for k in fa.keys())


@pytest.mark.parametrize("method, learning_rate", [("lora", 1e-3), ("full", 1e-4)])
def test_two_processes_write_one_model_and_match_one_process(tmp_path, embedded_cache, method, learning_rate):
    cache = embedded_cache.parent
    alone = run_stage(write_config(tmp_path / "one", method, learning_rate, cache), 1)
    assert alone.returncode == 0, alone.stderr[-3000:]
    both = run_stage(write_config(tmp_path / "two", method, learning_rate, cache), 2)
    assert both.returncode == 0, both.stderr[-3000:]  # torchrun exits 0 only when every rank did

    stage = tmp_path / "two" / "stage"
    (printed,) = results_printed(both.stdout)  # rank 0 alone prints the result
    written = json.loads((stage / "result.json").read_text())
    assert written == printed and written["trained"] and written["pairs"] == len(TOPICS)
    assert sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*.safetensors")) == ["model/model.safetensors"]
    assert sorted(p.name for p in stage.iterdir()) == ["model", "result.json", "trainer"]  # no stray temp folders
    tasks = [json.loads(line)["progress"] for line in both.stdout.splitlines() if line.startswith('{"progress"')]
    assert tasks and tasks[-1] == {"task": "dpo", "done": 2, "total": 2}  # two steps, counted once

    (single,) = results_printed(alone.stdout)
    for figure in ("loss", "rewardAccuracy", "rewardMargin"):
        assert written[figure] == pytest.approx(single[figure], abs=FIGURE_TOLERANCE), figure
    one, two = tmp_path / "one" / "stage" / "model" / "model.safetensors", stage / "model" / "model.safetensors"
    moved = max_weight_difference(one, embedded_cache / "model.safetensors")
    assert moved > 10 * WEIGHT_TOLERANCE  # training moved the weights far more than the tolerance
    assert max_weight_difference(one, two) <= WEIGHT_TOLERANCE

    unsharded = "full fine-tuning runs as DDP, not FSDP" in both.stderr
    assert unsharded == (method == "full")  # accelerate has no FSDP on CPUs (module docstring)
