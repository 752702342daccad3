"""Benchmark: one SEAS round's two heavy steps on a CUDA GPU, against the card's bf16 peak.

No weights are downloaded: the model is a randomly initialised Llama-architecture
model of about 1B parameters (``transformers.LlamaConfig``: hidden 2048, 20
layers, 32 heads, 8 KV heads, intermediate 5632, vocab 32000) in bfloat16, and
the prompts are random token ids. Two steps, as a round runs them:

- attack generation: ``model.generate`` sampling (T=1.0, top-p 0.95) ``--prompts``
  prompts of ``--prompt-len`` tokens x ``--new-tokens`` new tokens, with the
  dynamic cache (eager) and the static cache (which transformers compiles on a
  GPU); prefill is timed with ``max_new_tokens=1``, decode is the rest;
- DPO training steps with PEFT LoRA (r 8 on q/k/v/o, as the runtime's default):
  TRL's ``DPOTrainer`` when ``import trl`` works (a synthetic preference data set of
  random words, tokenized by a word-level tokenizer built in memory whose vocabulary
  is the model's), else a hand-written DPO loss step (reference log-probabilities
  with the adapter disabled). Seconds per optimizer step after warm-up, and peak memory.

Achieved TFLOP/s use N = the parameters that take part in matmuls (all but the
input-embedding table, a lookup; the LM head counts): generation 2 x N x tokens,
DPO 6 x N x tokens per step (policy forward 2N + policy backward through the
frozen base, input gradients only, 2N + reference forward 2N; LoRA's own
FLOPs and attention's score/value products are not counted). They are set
against the card's dense bf16 peak, looked up by ``torch.cuda.get_device_name()``.

    python -m benchmarks.gpu_round [--prompts 64] [--new-tokens 64] [--dpo-steps 12] [--dpo auto|trl|manual] [--no-static]
    python -m benchmarks.gpu_round --cpu-smoke     # a tiny model on the CPU, 2 DPO steps: checks the code paths only

About a minute on an H200 (half of it torch.compile for the static cache);
prints a JSON summary at the end and writes it to ``$OUT/gpu_round.json`` when
OUT is set (or to ``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from NVIDIA's data sheets; the first name fragment that matches wins.
BF16_PEAKS = (("h200 nvl", 835.0), ("h200", 989.0), ("h100 nvl", 835.0), ("h100 pcie", 756.0), ("h100", 989.0))

FULL = {"hidden_size": 2048, "num_hidden_layers": 20, "num_attention_heads": 32, "num_key_value_heads": 8,
        "intermediate_size": 5632, "vocab_size": 32000, "max_position_embeddings": 2048}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 256, "max_position_embeddings": 256}
SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2; every other id i is the word "w{i}"


def bf16_peak(name: str) -> float | None:
    lowered = name.lower()
    return next((peak for fragment, peak in BF16_PEAKS if fragment in lowered), None)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def build_model(sizes: dict, dtype: Any, device: str) -> tuple[Any, dict]:
    """A randomly initialised LlamaForCausalLM on ``device`` and its parameter counts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**sizes, bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False,
                         attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.eval()
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight.numel()
    counts = {"total": total, "input_embedding": embedding, "lm_head": head, "matmul": total - embedding,
              "per_layer": sum(p.numel() for p in model.model.layers[0].parameters())}
    return model, counts


def word_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer built in memory: the word "w{i}" is id i, so text of random words is random ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIALS), vocab_size)})
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")


# ---------------------------------------------------------------- attack generation


def compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - a private counter: absent means unknown, taken as none
        return 0


def generation(model: Any, counts: dict, args: argparse.Namespace, device: str, peak: float | None) -> dict:
    """Prefill and decode rates of batched sampling, per cache mode."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(len(SPECIALS), model.config.vocab_size, (args.prompts, args.prompt_len), generator=gen).to(device)
    mask = torch.ones_like(ids)
    n_matmul = counts["matmul"]
    results: dict[str, Any] = {"prompts": args.prompts, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
                               "attention": model.config._attn_implementation, "sampling": "T=1.0, top-p 0.95", "modes": {}}
    modes = ["dynamic"] + ([] if args.no_static else ["static"])
    for mode in modes:
        extra = {"cache_implementation": "static"} if mode == "static" else {}

        def run(new: int, extra: dict = extra) -> tuple[float, int]:
            sync(device)
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                                     max_new_tokens=new, min_new_tokens=new, pad_token_id=2, **extra)
            sync(device)
            return time.perf_counter() - start, out.shape[1] - ids.shape[1]

        entry: dict[str, Any] = {}
        graphs_before = compiled_graphs()
        try:
            # The full-length call first: the static cache is sized (and compiled) for it, and later calls reuse that size.
            first, _ = run(args.new_tokens)
            second, _ = run(args.new_tokens)
            entry["first_call_s"], entry["second_call_s"] = round(first, 3), round(second, 3)
            prefill = min(run(1)[0] for _ in range(args.repeats))
            fulls = [run(args.new_tokens) for _ in range(args.repeats)]
            full, generated = min(f[0] for f in fulls), fulls[0][1]
            compiled = compiled_graphs() > graphs_before  # transformers compiles the decode step for a static cache on a GPU
            prefill_tokens = args.prompts * args.prompt_len
            decode_tokens = args.prompts * (generated - 1)  # the first new token comes from the prefill's logits
            decode = full - prefill
            entry.update({
                "cache": mode, "auto_compiled_decode": compiled, "generated_per_prompt": generated,
                "prefill_s": round(prefill, 4), "full_s": round(full, 4), "decode_s": round(decode, 4),
                "prefill_tokens_per_s": round(prefill_tokens / prefill, 1),
                "decode_tokens_per_s": round(decode_tokens / decode, 1) if decode > 0 else None,
                "generated_tokens_per_s": round(args.prompts * generated / full, 1),
                "decode_ms_per_step": round(1000 * decode / max(1, generated - 1), 3),
                "prefill_tflops": round(2 * n_matmul * prefill_tokens / prefill / 1e12, 2),
                "decode_tflops": round(2 * n_matmul * decode_tokens / decode / 1e12, 2) if decode > 0 else None,
                "overall_tflops": round(2 * n_matmul * args.prompts * (args.prompt_len + generated) / full / 1e12, 2),
            })
            if peak:
                for key in ("prefill", "decode", "overall"):
                    if entry[f"{key}_tflops"] is not None:
                        entry[f"{key}_share_of_peak"] = round(entry[f"{key}_tflops"] / peak, 4)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what failed and goes on
            entry["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        results["modes"][mode] = entry
    return results


# ---------------------------------------------------------------- DPO


def preference_rows(count: int, prompt_len: int, completion_len: int, vocab_size: int, seed: int) -> list[dict[str, list[int]]]:
    """``count`` preference pairs of random ids; each completion ends with end-of-text (id 2)."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(len(SPECIALS), vocab_size, (n,), generator=gen).tolist()

    return [{"prompt": ids(prompt_len), "chosen": ids(completion_len - 1) + [2], "rejected": ids(completion_len - 1) + [2]}
            for _ in range(count)]


def as_text(ids: list[int]) -> str:
    return " ".join(SPECIALS[i] if i < len(SPECIALS) else f"w{i}" for i in ids)


def lora_config() -> Any:
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")


def dpo_trl(model: Any, rows: list[dict], args: argparse.Namespace, device: str, dtype: Any) -> dict:
    """Steps of TRL's DPOTrainer with a LoRA adapter; times between the ends of consecutive optimizer steps."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    tokenizer = word_tokenizer(model.config.vocab_size)
    # Completions start with a space: TRL tokenizes prompt + completion as one text.
    data = Dataset.from_list([{"prompt": as_text(r["prompt"]), "chosen": " " + as_text(r["chosen"]), "rejected": " " + as_text(r["rejected"])}
                              for r in rows])
    ends: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            sync(device)
            ends.append(time.perf_counter())

        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    wanted = {
        "output_dir": tempfile.mkdtemp(prefix="gpu_round-"), "per_device_train_batch_size": args.dpo_batch,
        "gradient_accumulation_steps": 1, "max_steps": args.dpo_steps, "learning_rate": 5e-6, "beta": 0.1,
        "max_length": args.dpo_len, "bf16": dtype == torch.bfloat16, "use_cpu": device != "cuda", "gradient_checkpointing": False,
        "precompute_ref_log_probs": False, "logging_steps": 1, "report_to": [], "save_strategy": "no", "disable_tqdm": True,
        "seed": 0, "dataloader_num_workers": 0, "lr_scheduler_type": "constant", "warmup_steps": 0,
    }
    known = {f.name for f in dataclasses.fields(DPOConfig)}
    config = DPOConfig(**{k: v for k, v in wanted.items() if k in known})
    start = time.perf_counter()
    trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=lora_config(),
                         callbacks=[Clock()])
    setup = time.perf_counter() - start
    batch = next(iter(trainer.get_train_dataloader()))
    sequences, width = batch["input_ids"].shape
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    began = time.perf_counter()
    trainer.train()
    return {"path": f"trl {trl.__version__} DPOTrainer + peft LoRA", "setup_s": round(setup, 2), "began": began, "ends": ends,
            "losses": losses, "sequences_per_step": int(sequences), "padded_len": int(width),
            "gradient_checkpointing": bool(getattr(config, "gradient_checkpointing", False)),
            "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}


def dpo_manual(model: Any, rows: list[dict], args: argparse.Namespace, device: str, dtype: Any) -> dict:
    """Hand-written DPO (sigmoid loss, beta 0.1): the policy is the model with a LoRA adapter, the reference the same with it disabled."""
    import peft
    import torch
    import torch.nn.functional as F
    from peft import get_peft_model

    start = time.perf_counter()
    policy = get_peft_model(model, lora_config())
    policy.train()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=5e-6)
    setup = time.perf_counter() - start

    def batch_tensors(batch: list[dict]) -> tuple[Any, Any, Any]:
        seqs = [r["prompt"] + r[key] for key in ("chosen", "rejected") for r in batch]  # chosen rows first, as TRL's collator
        marks = [[0] * len(r["prompt"]) + [1] * len(r[key]) for key in ("chosen", "rejected") for r in batch]
        width = min(args.dpo_len, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), 2, dtype=torch.long)
        attn = torch.zeros_like(ids)
        comp = torch.zeros_like(ids)
        for i, (s, m) in enumerate(zip(seqs, marks)):
            s, m = s[:width], m[:width]
            ids[i, : len(s)], attn[i, : len(s)], comp[i, : len(m)] = torch.tensor(s), 1, torch.tensor(m)
        return ids.to(device), attn.to(device), comp.to(device)

    def logps(ids: Any, attn: Any, comp: Any) -> Any:
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
            logits = policy(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        picked = torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None])[..., 0]
        return (picked * comp[:, 1:]).sum(-1)

    ends: list[float] = []
    losses: list[float] = []
    sequences = width = 0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    began = time.perf_counter()
    for step in range(args.dpo_steps):
        batch = rows[step * args.dpo_batch : (step + 1) * args.dpo_batch]
        ids, attn, comp = batch_tensors(batch)
        sequences, width = ids.shape
        half = len(batch)
        with torch.no_grad(), policy.disable_adapter():
            ref = logps(ids, attn, comp)
        pol = logps(ids, attn, comp)
        margin = 0.1 * ((pol[:half] - ref[:half]) - (pol[half:] - ref[half:]))
        loss = -F.logsigmoid(margin).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # syncs, as the trainer's per-step logging does
        sync(device)
        ends.append(time.perf_counter())
    return {"path": f"manual DPO loss + peft {peft.__version__} LoRA (TRL not used)", "setup_s": round(setup, 2), "began": began,
            "ends": ends, "losses": losses, "sequences_per_step": int(sequences), "padded_len": int(width),
            "gradient_checkpointing": False, "trainable_params": sum(p.numel() for p in trainable)}


def dpo(model: Any, counts: dict, args: argparse.Namespace, device: str, dtype: Any, peak: float | None) -> dict:
    import torch

    prompt_len = args.dpo_len // 2
    rows = preference_rows(args.dpo_steps * args.dpo_batch, prompt_len, args.dpo_len - prompt_len, model.config.vocab_size, 2)
    model.config.use_cache = False
    path, why = args.dpo, ""
    if path == "auto":
        try:
            import datasets  # noqa: F401  - TRL's trainers take a datasets.Dataset
            import trl  # noqa: F401

            path = "trl"
        except Exception as exc:  # noqa: BLE001 - any import failure means the fallback
            path, why = "manual", f"import trl failed ({type(exc).__name__}: {exc})"
    run = dpo_trl if path == "trl" else dpo_manual
    result = run(model, rows, args, device, dtype)
    if why:
        result["why_manual"] = why
    peak_mem = torch.cuda.max_memory_allocated() if device == "cuda" else None
    began, ends = result.pop("began"), result.pop("ends")
    steps = [b - a for a, b in zip([began] + ends[:-1], ends)]
    warmup = max(0, min(args.dpo_warmup, len(steps) - 1))
    timed = steps[warmup:]
    per_step = statistics.fmean(timed)
    tokens = result["sequences_per_step"] * result["padded_len"]
    flops = 6 * counts["matmul"] * tokens
    result.update({
        "steps": len(steps), "warmup_steps": warmup,
        "batch_pairs": args.dpo_batch, "max_length": args.dpo_len,
        "first_step_s": round(steps[0], 3) if steps else None,
        "seconds_per_step": round(per_step, 4), "seconds_per_step_median": round(statistics.median(timed), 4),
        "tokens_per_step": tokens, "tokens_per_s": round(tokens / per_step, 1),
        "tflops": round(flops / per_step / 1e12, 2),
        "peak_memory_gib": round(peak_mem / 2**30, 2) if peak_mem is not None else None,
        "loss_first_last": [round(result["losses"][0], 4), round(result["losses"][-1], 4)] if result["losses"] else None,
    })
    result.pop("losses")
    if peak:
        result["share_of_peak"] = round(result["tflops"] / peak, 4)
    return result


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU, 2 DPO steps: checks the code, measures nothing")
    parser.add_argument("--layers", type=int, default=None, help=f"decoder layers (default {FULL['num_hidden_layers']})")
    parser.add_argument("--prompts", type=int, default=None, help="generation batch: prompts sampled at once (default 64)")
    parser.add_argument("--prompt-len", type=int, default=None, help="prompt tokens (default 64)")
    parser.add_argument("--new-tokens", type=int, default=None, help="new tokens per prompt (default 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed generate calls per measurement, the fastest kept (default 3)")
    parser.add_argument("--no-static", action="store_true", help="skip the static-cache (compiled) generation")
    parser.add_argument("--dpo", choices=["auto", "trl", "manual"], default="auto", help="DPO path: TRL when importable (auto), or forced")
    parser.add_argument("--dpo-steps", type=int, default=None, help="optimizer steps (default 12)")
    parser.add_argument("--dpo-warmup", type=int, default=None, help="steps left out of the mean (default 2)")
    parser.add_argument("--dpo-batch", type=int, default=None, help="preference pairs per step (default 8)")
    parser.add_argument("--dpo-len", type=int, default=None, help="tokens per sequence, prompt + completion (default 512)")
    parser.add_argument("--json", default=None, help="where to write the summary (default $OUT/gpu_round.json when OUT is set)")
    args = parser.parse_args()

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_round: needs a CUDA GPU (torch.cuda.is_available() is False); --cpu-smoke runs a tiny dry run on the CPU",
              file=sys.stderr)
        return 2

    smoke = args.cpu_smoke
    sizes_smoke = {"prompts": 4, "prompt_len": 16, "new_tokens": 8, "repeats": 1, "dpo_steps": 2, "dpo_warmup": 1, "dpo_batch": 2, "dpo_len": 64}
    sizes_gpu = {"prompts": 64, "prompt_len": 64, "new_tokens": 64, "repeats": 3, "dpo_steps": 12, "dpo_warmup": 2, "dpo_batch": 8, "dpo_len": 512}
    defaults = sizes_smoke if smoke else sizes_gpu
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else torch.bfloat16
    sizes = dict(TINY if smoke else FULL)
    if args.layers:
        sizes["num_hidden_layers"] = args.layers

    name = "cpu (smoke test)" if smoke else torch.cuda.get_device_name()
    peak = None if smoke else bf16_peak(name)
    started = time.perf_counter()
    model, counts = build_model(sizes, dtype, device)
    import transformers

    print(f"device: {name}; bf16 dense peak used: {f'{peak:g} TFLOP/s' if peak else 'unknown'}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; model: random Llama {sizes}, {str(dtype).split('.')[-1]}, "
          f"attention {model.config._attn_implementation}")
    print(f"parameters: {counts['total']:,} total = {counts['input_embedding']:,} input embedding + "
          f"{counts['per_layer']:,} x {sizes['num_hidden_layers']} layers + {counts['lm_head']:,} LM head + "
          f"{counts['total'] - counts['input_embedding'] - counts['lm_head'] - counts['per_layer'] * sizes['num_hidden_layers']:,} final norm; "
          f"N (matmul) = {counts['matmul']:,}")
    if device == "cuda":
        print(f"weights on the GPU: {torch.cuda.memory_allocated() / 2**30:.2f} GiB")

    gen = generation(model, counts, args, device, peak)
    for mode, entry in gen["modes"].items():
        if "error" in entry:
            print(f"generation [{mode} cache]: failed: {entry['error']}")
            continue
        print(f"generation [{mode} cache{', decode compiled by transformers' if entry['auto_compiled_decode'] else ''}]: "
              f"{args.prompts} prompts x {args.prompt_len} + {entry['generated_per_prompt']} new; first call {entry['first_call_s']}s; "
              f"prefill {entry['prefill_s']}s ({entry['prefill_tokens_per_s']:,.0f} tok/s, {entry['prefill_tflops']} TFLOP/s), "
              f"decode {entry['decode_s']}s ({entry['decode_tokens_per_s'] or 0:,.0f} tok/s, {entry['decode_ms_per_step']} ms/step, "
              f"{entry['decode_tflops']} TFLOP/s), overall {entry['overall_tflops']} TFLOP/s")
    if device == "cuda":
        torch.cuda.empty_cache()

    try:
        train = dpo(model, counts, args, device, dtype, peak)
        print(f"DPO [{train['path']}]: {train['steps']} steps of {train['batch_pairs']} pairs x {train['padded_len']} tokens "
              f"({train['tokens_per_step']:,} tokens/step), {train['seconds_per_step']}s/step after {train['warmup_steps']} warm-up "
              f"(first {train['first_step_s']}s), {train['tflops']} TFLOP/s, peak memory {train['peak_memory_gib']} GiB")
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        train = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"DPO failed: {train['error']}")

    summary = {
        "device": name, "bf16_dense_peak_tflops": peak if peak else "unknown", "smoke_test": smoke,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "model": {"config": sizes, "dtype": str(dtype).split(".")[-1], "parameters": counts},
        "formulas": {
            "N": "parameters in matmuls: all but the input-embedding table (a lookup); the LM head counts",
            "generation_tflops": "2 x N x tokens / seconds (prefill: prompt tokens / prefill time; decode: tokens after each "
                                 "reply's first / (full - prefill time)); the prefill computes the LM head on the last position only",
            "dpo_tflops": "6 x N x (sequences x padded length) / seconds per step: policy forward 2N + backward through the frozen "
                          "base (input gradients only) 2N + reference forward 2N; a full fine-tune would be 8N with the reference",
        },
        "generation": gen, "dpo": train, "wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    target = args.json or (os.path.join(os.environ["OUT"], "gpu_round.json") if os.environ.get("OUT") else None)
    if target:
        with open(target, "w") as handle:
            handle.write(text + "\n")
        print(f"summary written to {target}")
    ok = "error" not in train and all("error" not in e for e in gen["modes"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
