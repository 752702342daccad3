"""Benchmark: the attack stage's batched generation against one-prompt-at-a-time ``generate``.

Same model, same prompts (red-team instructions built from the shipped seeds),
same sampling. Prints prompts per second for both paths and the ratio.

    .venv/bin/python -m benchmarks.generation [--prompts 32] [--batch-size 32] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import time

from seas_runtime import data
from seas_runtime.engines import Sampling, open_engine
from seas_runtime.redteam import redteam_instruction
from seas_runtime.settings import EMBEDDED_MODEL, ModelRef


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--single-prompts", type=int, default=None, help="time the one-at-a-time path on this many prompts (default: all)")
    args = parser.parse_args()

    seeds = data.stratified_subset(data.load("seeds"), args.prompts, 0)
    conversations = [[{"role": "user", "content": redteam_instruction(s)}] for s in seeds]
    sampling = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)

    engine = open_engine(ModelRef(model=args.model), batch_size=args.batch_size)
    engine.chat(conversations[:2], sampling)  # warm-up

    start = time.perf_counter()
    engine.chat(conversations, sampling)
    batched = len(conversations) / (time.perf_counter() - start)

    single_set = conversations[: args.single_prompts or len(conversations)]
    engine.batch_size = 1
    start = time.perf_counter()
    for conversation in single_set:
        engine.chat([conversation], sampling)
    single = len(single_set) / (time.perf_counter() - start)

    print(f"model {args.model}, {len(conversations)} prompts, max {args.max_new_tokens} new tokens, batch size {args.batch_size}")
    print(f"batched:       {batched:7.2f} prompts/s")
    print(f"one at a time: {single:7.2f} prompts/s  ({len(single_set)} prompts)")
    print(f"speed-up:      {batched / single:7.2f}x")


if __name__ == "__main__":
    main()
