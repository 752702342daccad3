"""Benchmark: the training stages' torchrun paths on one GPU: 2-process DDP (LoRA) and FSDP (full) DPO steps.

What runs is the runtime's own training setup (``seas_runtime.training``: loading,
trainer arguments, DDP/FSDP choice, the rank-0 save; ``seas_runtime.distributed``: the
batch split), driven by TRL's ``DPOTrainer`` under ``torch.distributed.run``. The model
is a randomly initialised Llama-architecture model of about 1B parameters (the config
of ``benchmarks.gpu_round``: hidden 2048, 20 layers, 32 heads, 8 KV heads,
intermediate 5632, vocab 32000), saved once to a temporary folder and loaded from
there as the stage loads a model; the data are random words over a word-level
tokenizer whose vocabulary is the model's. Nothing is downloaded.

Per mode (``fsdp-full``: ``training.method: full``; ``ddp-lora``: ``method: lora``),
one run with 2 processes and one with 1, at the same global batch (``--batch`` pairs per
optimizer step, split by ``batch_layout``). The 1-process ``fsdp-full`` run turns FSDP
on over its one GPU (the runtime shards only with several processes), so the FSDP
configuration, mixed precision and the full-state-dict save run on NCCL even if the
2-process run over gloo fails. Each process reports seconds per step
after one warm-up step, its own peak GPU memory (``torch.cuda.max_memory_allocated``),
the wrapper the Trainer put around the model, and the seconds to save.

One GPU, two ranks: NCCL refuses two ranks on the same GPU ("Duplicate GPU
detected"), so when there are fewer GPUs than processes every rank uses GPU 0
(``LOCAL_RANK`` set to 0 before accelerate reads it) and the collectives run on gloo,
which stages GPU tensors through host memory. That is the one departure from the
runtime's arguments (it would pick NCCL), and it makes the 2-process step times an
upper bound dominated by gloo's copies: they prove the code paths (DDP wrapping, FSDP
sharding, the full-state-dict gather and rank-0 save), not multi-GPU speed. The
1-process runs communicate nothing.

Self-checks (exit 1 when one fails, each printed): every run exits 0 and every rank
reports; rank 0 alone writes a model; on a GPU, a 2-process run (and the 1-process
FSDP run) is wrapped as its mode says (DistributedDataParallel, or FSDP2's ``FSDP*``
module class); every logged loss is finite and the first is ln 2 within
``--loss-tolerance`` (policy = reference before the first update); the last losses of
the 1- and 2-process runs agree within ``--loss-tolerance``. Launches that would start
after ``--budget`` seconds are skipped and count as failures.

    python3 -m benchmarks.gpu_distributed [--steps 4] [--batch 8] [--length 512] [--modes fsdp-full ddp-lora] [--layers 20] [--budget 220]
    python3 -m benchmarks.gpu_distributed --tiny    # a tiny model on the CPU (about 2 minutes on two cores): checks the code only

On the GPU machine it needs TRL, datasets and pydantic as wheels (``.whl/``: trl,
datasets, dill, multiprocess, pydantic, pydantic_core, annotated_types,
typing_inspection, typing_extensions) and the repository on ``PYTHONPATH``. It prints
a JSON summary at the end and writes it to ``$OUT/gpu_distributed.json`` when OUT is
set (or to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_round import FULL, TINY, as_text, build_model, preference_rows, word_tokenizer

ROOT = Path(__file__).resolve().parents[1]
MODES = {"fsdp-full": "full", "ddp-lora": "lora"}  # FSDP first: the path no CPU can run
LEARNING_RATES = {"lora": 5e-5, "full": 5e-6}  # the runtime's per-method defaults


# ---------------------------------------------------------------- one rank (run by torch.distributed.run)


def worker(args: argparse.Namespace) -> int:
    import torch

    shared = torch.cuda.is_available() and torch.cuda.device_count() < int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if shared:
        os.environ["LOCAL_RANK"] = "0"  # every rank on GPU 0; accelerate picks the device from LOCAL_RANK
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from seas_runtime.distributed import batch_layout, finish, rank_info
    from seas_runtime.settings import LoraSpec, ModelRef, TrainingMethod
    from seas_runtime.training import FSDP_CONFIG, common_args, load_for_training, peft_config, save_merged

    rank = rank_info()
    method = TrainingMethod(MODES[args.mode])
    out = Path(args.out)
    tokenizer, model, dtype = load_for_training(ModelRef(model=args.model_dir), None, method, seed=0)
    model.config.use_cache = False
    rows = preference_rows(args.batch * args.steps, args.length // 2, args.length - args.length // 2, model.config.vocab_size, 2)
    data = Dataset.from_list([{"prompt": as_text(r["prompt"]), "chosen": " " + as_text(r["chosen"]), "rejected": " " + as_text(r["rejected"])}
                              for r in rows])
    layout = batch_layout(args.batch, 1, rank.world_size)
    kwargs = common_args(dtype, str(out / f"trainer-{rank.rank}"), 0, method, rank, layout)
    if shared and rank.distributed:
        kwargs["ddp_backend"] = "gloo"  # NCCL refuses two ranks on one GPU
    if args.fsdp_alone:
        kwargs.update(fsdp=True, fsdp_config=dict(FSDP_CONFIG))  # the runtime shards only when distributed; here FSDP over 1 GPU
    config = DPOConfig(max_steps=args.steps, learning_rate=LEARNING_RATES[method.value], beta=0.1, max_length=args.length,
                       lr_scheduler_type="constant", warmup_steps=0, dataloader_num_workers=0, **kwargs)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ends: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            ends.append(time.perf_counter())

        def on_log(self, _a: Any, _s: Any, _c: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config(method, LoraSpec()), callbacks=[Clock()])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    trainer.train()
    wrapper = type(trainer.model_wrapped).__name__
    steps = [b - a for a, b in zip([began] + ends[:-1], ends)]
    timed = steps[1:] or steps
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    saved_at = time.perf_counter()
    target = save_merged(trainer, tokenizer, out / "model", rank, dtype if method == TrainingMethod.FULL else None)
    save_s = time.perf_counter() - saved_at
    finish()
    saved_dtypes: list[str] = []
    if rank.main:
        from safetensors import safe_open

        for file in sorted(target.glob("*.safetensors")):
            with safe_open(str(file), "pt") as handle:
                saved_dtypes += sorted({handle.get_slice(k).get_dtype() for k in handle.keys()})
    report = {
        "rank": rank.rank, "world_size": rank.world_size, "shared_gpu": shared, "backend": kwargs.get("ddp_backend"),
        "per_device_batch": layout.per_device, "accumulation": layout.accumulation, "global_batch": layout.global_batch,
        "fsdp_enabled": bool(getattr(trainer, "is_fsdp_enabled", False)), "wrapper": wrapper,
        "compute_dtype": str(dtype).split(".")[-1], "weights_dtype": str(next(trainer.model.parameters()).dtype).split(".")[-1],
        "steps": len(steps), "first_step_s": round(steps[0], 3) if steps else None,
        "seconds_per_step": round(statistics.fmean(timed), 4) if timed else None,
        "peak_memory_gib": round(peak / 2**30, 2) if peak is not None else None,
        "losses": [round(x, 5) for x in losses], "save_s": round(save_s, 2),
        "saved": sorted(p.name for p in target.glob("*.safetensors")) if rank.main else [],
        "saved_dtypes": sorted(set(saved_dtypes)),
    }
    (out / f"rank{rank.rank}.json").write_text(json.dumps(report))
    return 0


# ---------------------------------------------------------------- the launcher


def save_random_model(sizes: dict, folder: Path, dtype: Any) -> dict:
    """The random Llama and its word tokenizer saved as a stage would find a model; returns the parameter counts."""
    model, counts = build_model(sizes, dtype, "cpu")
    model.save_pretrained(folder, safe_serialization=True)
    word_tokenizer(sizes["vocab_size"]).save_pretrained(folder)
    del model
    return counts


def launch(mode: str, processes: int, args: argparse.Namespace, model_dir: Path, work: Path, timeout: float) -> dict:
    """One torchrun launch of ``--worker``, killed after ``timeout`` seconds; the ranks' reports, or what went wrong."""
    out = work / f"{mode}-{processes}"
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", "benchmarks.gpu_distributed",
           "--worker", "--mode", mode, "--model-dir", str(model_dir), "--out", str(out), "--steps", str(args.steps),
           "--batch", str(args.batch), "--length", str(args.length)] + (["--fsdp-alone"] if mode == "fsdp-full" and processes == 1 else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), "PYTHONUNBUFFERED": "1"}
    if args.tiny:
        env["OMP_NUM_THREADS"] = "1"
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = done.returncode, (done.stdout + done.stderr)[-2500:]
    except subprocess.TimeoutExpired as exc:
        rc, tail = 124, f"timed out after {timeout:.0f}s: " + str((exc.stderr or b"")[-2000:])
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    models = sorted(str(p.relative_to(out)) for p in out.rglob("*.safetensors"))
    result = {"mode": mode, "processes": processes, "rc": rc, "wall_s": round(time.perf_counter() - started, 1), "ranks": reports,
              "model_files": models}
    if rc != 0:
        result["log_tail"] = tail
    return result


def checks(runs: list[dict], gpu: bool, tolerance: float) -> list[str]:
    """What must hold; each failure as one line."""
    failures = []
    for run in runs:
        name = f"{run['mode']} x{run['processes']}"
        if run["rc"] != 0:
            failures.append(f"{name}: exit code {run['rc']}")
            continue
        if sorted(r["rank"] for r in run["ranks"]) != list(range(run["processes"])):
            failures.append(f"{name}: ranks reported {[r['rank'] for r in run['ranks']]}")
        if [r["rank"] for r in run["ranks"] if r["saved"]] != [0] or not all(m.startswith("model/") for m in run["model_files"]):
            failures.append(f"{name}: the model must be written once, by rank 0: {run['model_files']}")
        for r in run["ranks"]:
            if not r["losses"] or not all(math.isfinite(x) for x in r["losses"]):
                failures.append(f"{name} rank {r['rank']}: losses {r['losses']}")
            elif abs(r["losses"][0] - math.log(2)) > tolerance:
                failures.append(f"{name} rank {r['rank']}: first loss {r['losses'][0]} is not ln 2")
        if gpu and (run["processes"] > 1 or run["mode"] == "fsdp-full"):
            want = "FSDP" if run["mode"] == "fsdp-full" else "DistributedDataParallel"
            for r in run["ranks"]:
                if want not in r["wrapper"] or (run["mode"] == "fsdp-full") != r["fsdp_enabled"]:
                    failures.append(f"{name} rank {r['rank']}: wrapped as {r['wrapper']} (fsdp {r['fsdp_enabled']}), expected {want}")
            saved = [d for r in run["ranks"] for d in r["saved_dtypes"]]
            if saved != ["BF16"]:  # a GPU trains in bf16: the merged or gathered weights are saved in it
                failures.append(f"{name}: saved weights in {saved}, expected BF16")
    by_key = {(run["mode"], run["processes"]): run for run in runs if run["rc"] == 0 and run["ranks"]}
    for mode in MODES:
        one, two = by_key.get((mode, 1)), by_key.get((mode, 2))
        if one and two and one["ranks"][0]["losses"] and two["ranks"][0]["losses"]:
            a, b = one["ranks"][0]["losses"][-1], two["ranks"][0]["losses"][-1]
            if abs(a - b) > tolerance:
                failures.append(f"{mode}: last loss with 1 process {a} and with 2 processes {b} differ by more than {tolerance}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU: checks the code paths, measures nothing")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run, the first a warm-up (default 4)")
    parser.add_argument("--batch", type=int, default=None, help="pairs per optimizer step, the global batch (default 8)")
    parser.add_argument("--length", type=int, default=None, help="tokens per sequence, prompt + completion (default 512)")
    parser.add_argument("--layers", type=int, default=None, help=f"decoder layers (default {FULL['num_hidden_layers']})")
    parser.add_argument("--run-timeout", type=int, default=None, help="seconds one torchrun launch may take (default 120)")
    parser.add_argument("--budget", type=int, default=None, help="seconds for everything; launches that would start past it are skipped "
                        "(default 220)")
    parser.add_argument("--loss-tolerance", type=float, default=None, help="last-loss difference allowed, 1 vs 2 processes (default 0.05)")
    parser.add_argument("--json", default=None, help="where to write the summary (default $OUT/gpu_distributed.json when OUT is set)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--fsdp-alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    import torch

    gpu = torch.cuda.is_available()
    if not gpu and not args.tiny:
        print("gpu_distributed: needs a CUDA GPU (torch.cuda.is_available() is False); --tiny checks the code on the CPU", file=sys.stderr)
        return 2
    defaults = ({"steps": 3, "batch": 4, "length": 64, "run_timeout": 240, "budget": 900, "loss_tolerance": 1e-3} if args.tiny
                else {"steps": 4, "batch": 8, "length": 512, "run_timeout": 120, "budget": 220, "loss_tolerance": 0.05})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    sizes = dict(TINY if args.tiny else FULL)
    if args.layers:
        sizes["num_hidden_layers"] = args.layers
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_distributed-"))
    counts = save_random_model(sizes, work / "model", torch.float32 if args.tiny else torch.bfloat16)
    device = torch.cuda.get_device_name() if gpu else "cpu (tiny: checks the code, measures nothing)"
    print(f"device: {device}, {torch.cuda.device_count() if gpu else 0} GPU(s); torch {torch.__version__}; "
          f"model: random Llama {sizes}, {counts['total']:,} parameters; saved in {time.perf_counter() - started:.1f}s", flush=True)
    runs, skipped = [], []
    for mode in args.modes:
        for processes in (2, 1):
            left = args.budget - (time.perf_counter() - started)
            if left < 30:
                skipped.append(f"{mode} x{processes}: skipped, {args.budget}s budget spent")
                print(skipped[-1], flush=True)
                continue
            run = launch(mode, processes, args, work / "model", work, min(args.run_timeout, left))
            runs.append(run)
            for r in run["ranks"]:
                print(f"{mode} x{processes} rank {r['rank']}: {r['seconds_per_step']} s/step (first {r['first_step_s']} s), "
                      f"peak {r['peak_memory_gib']} GiB, wrapper {r['wrapper']}, backend {r['backend']}, "
                      f"batch {r['per_device_batch']}x{r['accumulation']}x{r['world_size']}, losses {r['losses']}, save {r['save_s']} s", flush=True)
            if run["rc"] != 0:
                print(f"{mode} x{processes}: exit {run['rc']}\n{run.get('log_tail', '')}", flush=True)
    shutil.rmtree(work, ignore_errors=True)  # 2 GB per saved model on a GPU machine
    failures = checks(runs, gpu, args.loss_tolerance) + skipped
    summary = {
        "device": device, "gpus": torch.cuda.device_count() if gpu else 0, "torch": torch.__version__, "tiny": args.tiny,
        "model": {"config": sizes, "parameters": counts["total"]},
        "global_batch_pairs": args.batch, "length": args.length, "steps": args.steps,
        "note": "2 processes share one GPU over gloo (NCCL refuses two ranks on one GPU): their step times are an upper bound "
                "set by gloo's host copies, not multi-GPU speed",
        "runs": runs, "failures": failures, "ok": not failures, "wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    target = args.json or (os.path.join(os.environ["OUT"], "gpu_distributed.json") if os.environ.get("OUT") else None)
    if target:
        Path(target).write_text(text + "\n")
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
