"""Benchmark: the transformers engine's generation on the CPU, against the CPU's peak.

Same model, same prompts (red-team instructions built from the shipped seeds),
as the attack stage writes them. Prints, for batched generation at
``--batch-size`` (greedy, and sampled at T=1.0, top-p 0.95) and for
one-prompt-at-a-time generation on a subset: prompts/s, generated tokens/s and
the speed-up of batching; the prefill/decode split (the same prompts with
``max_new_tokens=1`` and with the full budget); the achieved FLOP/s and its
share of this CPU's fp32 peak; and a float32 GEMM of the model's MLP shape as
the practically reachable ceiling.

    .venv/bin/python -m benchmarks.generation [--prompts 64] [--batch-size 32] [--max-new-tokens 32]
        [--single-prompts 8] [--fma-units 2] [--threads N]

Generated tokens are counted by re-tokenizing the decoded replies (the engine
returns text; special tokens are dropped and whitespace stripped, so the count
can be off by a token or so per reply). About 2.5 minutes on two idle cores
with the defaults; another process busy on the same cores slows the decode's
many small parallel ops most (one run here took 6 minutes so): the load
average before and after is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


# ---------------------------------------------------------------- the CPU's peak


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty when there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def clock_ghz(info: dict[str, str]) -> tuple[float, str]:
    """(GHz, where it came from): cpufreq's cpuinfo_max_freq when present, else /proc/cpuinfo's "cpu MHz"."""
    try:
        return int(MAX_FREQ.read_text().split()[0]) / 1e6, f"{MAX_FREQ} (the rated maximum)"
    except (OSError, ValueError, IndexError):
        pass
    mhz = float(info.get("cpu MHz", "nan"))
    return mhz / 1e3, '/proc/cpuinfo "cpu MHz" (the current clock as the kernel reports it, not the boost clock)'


def vector_lanes(flags: set[str]) -> tuple[int, str]:
    """fp32 lanes of the widest vector FMA the flags show."""
    if "avx512f" in flags:
        return 16, "AVX-512 (512-bit)"
    if "avx2" in flags or "avx" in flags:
        return 8, "AVX2 (256-bit)"
    return 4, "SSE (128-bit)"


def cpu_peak(fma_units: int, threads: int) -> tuple[float, list[str]]:
    """(peak fp32 FLOP/s, lines saying how it was computed): cores x clock x lanes x 2 (FMA) x FMA units."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    affinity = len(os.sched_getaffinity(0))
    siblings, physical = int(info.get("siblings", affinity) or affinity), int(info.get("cpu cores", affinity) or affinity)
    smt = max(1, siblings // max(1, physical))
    cores = max(1, min(affinity // smt or 1, threads))
    ghz, clock_from = clock_ghz(info)
    lanes, isa = vector_lanes(flags)
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    per_cycle = lanes * fma * fma_units
    peak = cores * ghz * 1e9 * per_cycle
    lines = [
        f"CPU: {info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})",
        f"  cores    {cores}  (os.sched_getaffinity: {affinity} logical CPUs, {smt} thread(s) per core; torch.get_num_threads(): {threads})",
        f"  clock    {ghz:.3f} GHz  from {clock_from}",
        f"  vector   {lanes} fp32 lanes  ({isa}, from the cpuinfo flags)",
        f"  FMA      x{fma} ({'fused multiply-add: 2 FLOPs per lane' if fma == 2 else 'no fma flag: 1 FLOP per lane'}) x {fma_units} FMA unit(s) per core (--fma-units)",
        f"  peak     {cores} x {ghz:.3f} GHz x {lanes} x {fma} x {fma_units} = {per_cycle} FLOPs/cycle/core -> {peak / 1e9:.1f} GFLOP/s fp32",
    ]
    return peak, lines


def gemm_gflops(m: int, k: int, n: int, seconds: float = 3.0) -> float:
    """GFLOP/s of a float32 [m x k] x [k x n] matmul, repeated for about ``seconds`` after a warm-up."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(3):
        torch.matmul(a, b, out=out)
    reps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            torch.matmul(a, b, out=out)
        reps += 10
    return 2 * m * k * n * reps / elapsed / 1e9


# ---------------------------------------------------------------- the model's FLOPs


def model_flops(model: Any) -> tuple[int, int, int]:
    """(non-embedding parameters, LM-head parameters, input-embedding parameters).

    The LM head counts even when tied to the input embedding (SmolLM2): it is a
    [vocab x hidden] matmul per position that produces logits.
    """
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())  # a tied head is counted once here
    tied = head.data_ptr() == embed.data_ptr()
    non_embedding = total - embed.numel() - (0 if tied else head.numel())
    return non_embedding, head.numel(), embed.numel()


def executed_tokens(rows: list[list[int]], batch_size: int, shared: int, generated: list[int], max_new: int) -> tuple[int, int, int, int]:
    """(prefill positions run, logits positions, decode positions run, decode forward passes) the engine computes, estimated.

    Mirrors ``Decoder.generate``: the prefix common to all rows runs once; each batch
    (rows sorted by length, ``batch_size`` at a time) runs its distinct rows' remaining
    tokens left-padded to the batch's widest; prefill computes logits for the last
    position only; every generated token but a row's last is fed back through the model.
    """
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), tuple(rows[i])))
    prefill = passes = 0
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        distinct = {tuple(rows[i]) for i in indices}
        prefill += len(distinct) * max(len(r) - shared for r in distinct)
        passes += max(min(generated[i], max_new - 1) for i in indices)
    decode = sum(min(n, max_new - 1) for n in generated)
    return shared + prefill, len(rows), decode, passes


# ---------------------------------------------------------------- the runs


def timed(call: Callable[[], list[str]]) -> tuple[list[str], float]:
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model reference (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--single-prompts", type=int, default=8, help="time the one-at-a-time path on this many prompts")
    parser.add_argument("--fma-units", type=int, default=2, help="FMA units per core (2 on Zen 2/3/4 and recent Intel)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--gemm-seconds", type=float, default=3.0, help="how long each GEMM measurement runs")
    args = parser.parse_args()

    import torch

    from seas_runtime import data
    from seas_runtime.engines import Sampling, open_engine
    from seas_runtime.engines.decoding import common_prefix
    from seas_runtime.redteam import redteam_instruction
    from seas_runtime.settings import EMBEDDED_MODEL, ModelRef

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model_ref = args.model or EMBEDDED_MODEL
    max_new = args.max_new_tokens

    seeds = data.stratified_subset(data.load("seeds"), args.prompts, 0)
    conversations = [[{"role": "user", "content": redteam_instruction(s)}] for s in seeds]
    engine = open_engine(ModelRef(model=model_ref, dtype="float32"), batch_size=args.batch_size)
    if engine.name != "transformers":
        raise SystemExit(f"this benchmark measures the transformers engine, but {engine.name} was opened")
    tok = engine.tokenizer
    rows = [tok(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
            for c in conversations]
    prompt_tokens = sum(len(r) for r in rows)
    shared = common_prefix(rows)
    shared = shared if shared >= 2 else 0  # the engine shares no prefix shorter than two tokens
    non_embedding, head, embed = model_flops(engine.model)
    per_token = 2 * (non_embedding + head)
    hidden, intermediate = engine.model.config.hidden_size, engine.model.config.intermediate_size
    peak, peak_lines = cpu_peak(args.fma_units, threads)

    greedy = Sampling(temperature=0.0, max_new_tokens=max_new, seed=0)
    sampled = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=max_new, seed=0)
    prefill_only = Sampling(temperature=0.0, max_new_tokens=1, seed=0)

    load_before = os.getloadavg()
    engine.chat(conversations[:2], Sampling(temperature=0.0, max_new_tokens=4))  # warm-up
    greedy_out, greedy_s = timed(lambda: engine.chat(conversations, greedy))
    sampled_out, sampled_s = timed(lambda: engine.chat(conversations, sampled))
    _, prefill_s = timed(lambda: engine.chat(conversations, prefill_only))
    single_set = conversations[: args.single_prompts]
    engine.batch_size = 1
    single_out: list[str] = []
    _, single_s = timed(lambda: [single_out.extend(engine.chat([c], sampled)) for c in single_set])
    engine.batch_size = args.batch_size

    load_after = os.getloadavg()
    greedy_tokens, sampled_tokens, single_tokens = (count_tokens(tok, o) for o in (greedy_out, sampled_out, single_out))

    # ---- report
    n = len(conversations)
    print(f"model {model_ref} (float32, transformers engine), {n} prompts, max {max_new} new tokens, batch size {args.batch_size}, "
          f"{threads} torch threads")
    print(f"load average (1 min) before the runs {load_before[0]:.2f}, after {load_after[0]:.2f} (this benchmark itself adds about "
          f"{threads}): other processes on these {len(os.sched_getaffinity(0))} CPUs slow the decode's many small parallel ops most")
    print(f"prompt tokens: {prompt_tokens} ({statistics.fmean(len(r) for r in rows):.0f} per prompt, {shared} shared by all "
          f"and run once by the engine)")
    print()
    print(f"{'path':<34} {'prompts':>7} {'seconds':>8} {'prompts/s':>10} {'gen tokens':>10} {'gen tok/s':>10} {'tok/reply':>9}")
    lines = [
        (f"batched x{args.batch_size}, greedy", n, greedy_s, greedy_tokens),
        (f"batched x{args.batch_size}, sampled T=1 top-p .95", n, sampled_s, sampled_tokens),
        ("one at a time, sampled", len(single_set), single_s, single_tokens),
    ]
    for name, count, seconds, tokens in lines:
        print(f"{name:<34} {count:>7} {seconds:>8.1f} {count / seconds:>10.2f} {sum(tokens):>10} {sum(tokens) / seconds:>10.1f} "
              f"{statistics.fmean(tokens):>9.1f}")
    single_rate = len(single_set) / single_s
    print(f"batching speed-up (sampled): {n / sampled_s / single_rate:.2f}x prompts/s, "
          f"{sum(sampled_tokens) / sampled_s / (sum(single_tokens) / single_s):.2f}x generated tokens/s")

    print()
    pf_run, pf_logits, dc_run, dc_passes = executed_tokens(rows, args.batch_size, shared, greedy_tokens, max_new)
    decode_s = greedy_s - prefill_s
    decode_tokens = sum(max(0, t - 1) for t in greedy_tokens)  # the first token of each reply comes from the prefill's logits
    print("prefill vs decode (batched, greedy):")
    print(f"  max_new_tokens=1 (prefill):  {prefill_s:6.1f}s  {prompt_tokens / prefill_s:8.1f} prompt tokens/s")
    print(f"  max_new_tokens={max_new:<3} (full):   {greedy_s:6.1f}s")
    print(f"  decode (full - prefill):     {decode_s:6.1f}s  {decode_tokens / max(decode_s, 1e-9):8.1f} tokens/s "
          f"({decode_tokens} tokens after each reply's first); prefill is {100 * prefill_s / greedy_s:.0f}% of the time")
    print(f"  decode steps:                {dc_passes} forward passes of up to {args.batch_size} rows, "
          f"{1000 * decode_s / max(1, dc_passes):.0f} ms each")

    print()
    print(f"FLOPs per token: 2 x (non-embedding {non_embedding / 1e6:.1f}M + LM head {head / 1e6:.1f}M = vocab "
          f"{engine.model.config.vocab_size} x hidden {hidden}{', tied to the embedding' if head == embed else ''}) "
          f"= {per_token / 1e6:.0f} MFLOPs (attention's score/value products not counted)")
    prefill_flops = 2 * non_embedding * pf_run + 2 * head * pf_logits
    runs = [
        ("greedy, full budget", greedy_s, per_token * (prompt_tokens + sum(greedy_tokens)),
         prefill_flops + per_token * dc_run),
        ("prefill only (max_new_tokens=1)", prefill_s, per_token * (prompt_tokens + n), prefill_flops),
        ("decode only (full - prefill)", decode_s, per_token * decode_tokens, per_token * dc_run),
    ]
    print("achieved FLOP/s (nominal: every prompt and generated token x FLOPs per token; executed: what the engine runs, "
          "shared prefix once, padding included, no LM head on prefill positions but the last):")
    for name, seconds, nominal, executed in runs:
        print(f"  {name:<32} nominal {nominal / seconds / 1e9:6.1f} GFLOP/s ({100 * nominal / seconds / peak:4.1f}% of peak)   "
              f"executed {executed / seconds / 1e9:6.1f} GFLOP/s ({100 * executed / seconds / peak:4.1f}% of peak)")
    single_nominal = per_token * (sum(len(r) for r in rows[: len(single_set)]) + sum(single_tokens))
    print(f"  {'one at a time, sampled':<32} nominal {single_nominal / single_s / 1e9:6.1f} GFLOP/s "
          f"({100 * single_nominal / single_s / peak:4.1f}% of peak)")

    print()
    print("\n".join(peak_lines))
    if not MAX_FREQ.exists():
        print('  ("cpu MHz" is the clock at the moment of reading, not the boost clock: a core boosting higher makes the real peak larger)')
    print()
    print(f"GEMM ceiling (float32 [M x {hidden}] x [{hidden} x {intermediate}], the model's MLP up-projection, {threads} threads):")
    mean_suffix = max(1, round(statistics.fmean(len(r) - shared for r in rows)))
    for m, what in ((args.batch_size, "a decode step's rows (batch size)"), (args.batch_size * mean_suffix, "a prefill batch's positions")):
        g = gemm_gflops(m, hidden, intermediate, args.gemm_seconds)
        print(f"  M = {m:<5} ({what}): {g:7.1f} GFLOP/s ({100 * g * 1e9 / peak:4.1f}% of peak)")


if __name__ == "__main__":
    main()
