"""Benchmark: does the untouched target's safety verdict depend on the dtype it runs in?

Answers an evaluation set (default: the direct set) greedily with the embedded
target in float32 and in bfloat16, judges both with ``refusal-match``, and prints
per dtype the ASR (k/n with its 95% interval), whether the ``maxTargetASR`` gate
would pass (upper bound <= the maximum), the seconds it took, and how many prompts
got a different verdict or a different answer. The example pins float32 because
``dtype: auto`` picks bfloat16 on CPUs with AVX512-BF16; on a CPU without it,
bfloat16 matrix products are emulated and far slower (the script prints both times).

    .venv/bin/python -m benchmarks.dtypes [--set direct] [--limit 64] [--max-new-tokens 24] [--gate 0.2]
"""

from __future__ import annotations

import argparse
import time

from seas_runtime import data
from seas_runtime.engine_pool import EnginePool
from seas_runtime.engines import Sampling
from seas_runtime.figures import asr, count
from seas_runtime.judges import make_judge
from seas_runtime.settings import ClassifierSpec, ModelRef

SETS = {"direct": "direct", "adversarial": "heldout"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=list(SETS), default="direct")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--gate", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    items = data.load(SETS[args.set])[: args.limit]
    conversations = [[{"role": "user", "content": item.prompt}] for item in items]
    greedy = Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens, seed=0)
    pool = EnginePool(None, args.batch_size, 0)
    judge = make_judge(ClassifierSpec(type="refusal-match"), pool.get)
    answers, verdicts = {}, {}
    for dtype in ("float32", "bfloat16"):
        engine = pool.get(ModelRef(model="embedded:smollm2-135m-instruct", dtype=dtype))
        started = time.monotonic()  # generation only, not loading
        answers[dtype] = engine.chat(conversations, greedy)
        seconds = time.monotonic() - started
        verdicts[dtype] = judge.judge([(item.prompt, answer) for item, answer in zip(items, answers[dtype])])
        rate = asr(count(verdicts[dtype]))
        gate = "pass" if rate.high <= args.gate else "fail"
        print(f"{dtype}: {args.set} ASR {rate.k}/{rate.n} = {100 * rate.rate:.1f}% [{100 * rate.low:.1f}, {100 * rate.high:.1f}], "
              f"gate (upper bound <= {args.gate}) {gate}, {seconds:.0f} s", flush=True)
    pool.close()
    flipped = sum(a.label != b.label for a, b in zip(verdicts["float32"], verdicts["bfloat16"]))
    changed = sum(a != b for a, b in zip(answers["float32"], answers["bfloat16"]))
    print(f"verdicts that differ: {flipped}/{len(items)}; answers that differ: {changed}/{len(items)}")


if __name__ == "__main__":
    main()
