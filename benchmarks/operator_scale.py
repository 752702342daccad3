"""Benchmark: the operator reconciling many SafetyEvolutions against the kmock API emulator.

Starts the emulator and ``seas operator`` as separate processes (real HTTP),
creates N SafetyEvolutions and measures a fixed window: operator memory (RSS)
and CPU, the emulator's CPU, reconciles per second, and API requests per
reconcile (the reconciler's own calls, and all requests the emulator served:
those plus kopf's watches, annotation and status patches and Events).

    .venv/bin/python -m benchmarks.operator_scale [--count 200] [--window 120] [--interval 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

from tests.helpers.operator_harness import Emulator, OperatorProcess


# kmock answers on one core and saturates with a few hundred evolutions, so a Lease renewal can wait longer
# than the default 10 s renew deadline, and the leader would step down mid-window (as it should against an
# API server that slow). The benchmark measures the reconciler, so it gives the Lease more slack.
PATIENT_LEADER = {"SEAS_LEADER_LEASE_SECONDS": "300", "SEAS_LEADER_RENEW_SECONDS": "240", "SEAS_LEADER_RETRY_SECONDS": "5"}


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--window", type=float, default=120.0, help="seconds to measure after creating the evolutions")
    parser.add_argument("--interval", type=float, default=30.0, help="reconcile timer interval (SEAS_RECONCILE_INTERVAL)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        emulator = Emulator(tmp)
        operator = OperatorProcess(emulator, tmp, {"SEAS_RECONCILE_INTERVAL": str(args.interval), "SEAS_LOG_LEVEL": "WARNING", **PATIENT_LEADER})
        operator.start()
        try:
            idle_rss = rss_mib(operator.proc.pid)
            spec = {"rounds": 3, "target": {"model": "meta-llama/Meta-Llama-3-8B-Instruct"}, "redTeam": {"model": "meta-llama/Meta-Llama-3-8B-Instruct"}}
            start_m, start_r = operator.metrics(), requests_served(tmp)
            op_cpu0, emu_cpu0, t0 = cpu_seconds(operator.proc.pid), cpu_seconds(emulator.proc.pid), time.monotonic()
            for i in range(args.count):
                emulator.create_evolution({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": f"evo-{i:04d}"}, "spec": spec})
            create_seconds = time.monotonic() - t0
            time.sleep(max(0.0, args.window - create_seconds))
            if not operator.alive():
                raise SystemExit(f"the operator exited during the window:\n{operator.log()}")
            end_m, end_r, t1 = operator.metrics(), requests_served(tmp), time.monotonic()
            op_cpu, emu_cpu = cpu_seconds(operator.proc.pid) - op_cpu0, cpu_seconds(emulator.proc.pid) - emu_cpu0
            rss = rss_mib(operator.proc.pid)
            children = emulator.children()
        finally:
            operator.stop()
            emulator.close()

    reconciles = counter(end_m, "seas_operator_reconciles") - counter(start_m, "seas_operator_reconciles")
    own_calls = counter(end_m, "seas_operator_api_calls") - counter(start_m, "seas_operator_api_calls")
    served = end_r - start_r - args.count  # the benchmark's own creates are not the operator's
    names = [c["metadata"]["name"] for c in children]
    elapsed = t1 - t0
    print(f"evolutions created:             {args.count} in {create_seconds:.1f}s (timer interval {args.interval:g}s, window {elapsed:.0f}s)")
    print(f"round-0 Jobs launched:          {len(set(names))} ({len(names) - len(set(names))} duplicates)")
    print(f"operator RSS:                   {idle_rss:.0f} MiB idle -> {rss:.0f} MiB with {args.count} evolutions")
    print(f"operator CPU:                   {op_cpu:.1f}s over {elapsed:.0f}s ({100 * op_cpu / elapsed:.0f}% of a core)")
    print(f"emulator CPU:                   {emu_cpu:.1f}s over {elapsed:.0f}s ({100 * emu_cpu / elapsed:.0f}% of a core)")
    print(f"reconciles:                     {reconciles:.0f} ({reconciles / elapsed:.2f}/s)")
    print(f"reconciler API calls/reconcile: {own_calls / max(1, reconciles):.2f}")
    print(f"all API requests/reconcile:     {served / max(1, reconciles):.2f} ({served} requests besides the benchmark's creates: incl. kopf's watches, patches and Events)")


if __name__ == "__main__":
    main()
