"""Benchmark: the operator reconciling many SafetyEvolutions against the kmock API emulator.

Starts the emulator and ``seas operator`` as separate processes (real HTTP),
creates N SafetyEvolutions, waits until every one has launched its round-0 Job,
then measures a steady-state window. Reports operator memory (RSS), reconciles
per second, and API requests per reconcile (all requests the emulator served:
the reconciler's own plus kopf's watches, status patches and Events).

    .venv/bin/python benchmarks/operator_scale.py [--count 200] [--window 30] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from operator_harness import Emulator, OperatorProcess, wait_for  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def counter(metrics: str, name: str) -> float:
    match = re.search(rf"^{name}_total (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


def requests_served(tmp: Path) -> int:
    return json.loads((tmp / "kmock.stats").read_text())["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of steady state to measure")
    parser.add_argument("--interval", type=float, default=5.0, help="reconcile timer interval (SEAS_RECONCILE_INTERVAL)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        emulator = Emulator(tmp)
        operator = OperatorProcess(emulator, tmp, {"SEAS_RECONCILE_INTERVAL": str(args.interval)})
        operator.start()
        try:
            idle_rss = rss_mib(operator.proc.pid)
            spec = {"rounds": 3, "target": {"model": "meta-llama/Meta-Llama-3-8B-Instruct"}, "redTeam": {"model": "meta-llama/Meta-Llama-3-8B-Instruct"}}
            started = time.monotonic()
            for i in range(args.count):
                emulator.create_evolution({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": f"evo-{i:04d}"}, "spec": spec})
            wait_for(lambda: len(emulator.children()) >= args.count, 600, f"{args.count} round-0 Jobs", interval=1.0)
            launch_seconds = time.monotonic() - started

            before_m, before_r, t0 = operator.metrics(), requests_served(tmp), time.monotonic()
            time.sleep(args.window)
            after_m, after_r, t1 = operator.metrics(), requests_served(tmp), time.monotonic()
            reconciles = counter(after_m, "seas_operator_reconciles") - counter(before_m, "seas_operator_reconciles")
            own_calls = counter(after_m, "seas_operator_api_calls") - counter(before_m, "seas_operator_api_calls")
            served = after_r - before_r
            children = len(emulator.children())
            rss = rss_mib(operator.proc.pid)
        finally:
            operator.stop()
            emulator.close()

    print(f"evolutions:                    {args.count} (timer interval {args.interval:g}s)")
    print(f"children created:              {children} (expected {args.count}: one round-0 Job each, none twice)")
    print(f"time to launch all round-0:    {launch_seconds:.1f}s")
    print(f"operator RSS:                  {idle_rss:.0f} MiB idle, {rss:.0f} MiB with {args.count} evolutions")
    print(f"reconciles per second:         {reconciles / (t1 - t0):.1f} (steady state, {t1 - t0:.0f}s window)")
    print(f"reconciler API calls/reconcile: {own_calls / max(1, reconciles):.2f}")
    print(f"all API requests/reconcile:    {served / max(1, reconciles):.2f} (incl. kopf's watches, patches, Events)")


if __name__ == "__main__":
    main()
