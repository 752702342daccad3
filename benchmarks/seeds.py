"""Benchmark: how much the example's figures move with the seed alone.

Runs a SafetyEvolution (default ``examples/evolution.yaml``) once per seed with
``spec.seed`` replaced, each into its own output folder (resumable: a finished
seed is not rerun), then prints, per round and figure, the mean, the standard
deviation and the range over seeds, next to the typical width of one run's
95% interval. When the spread over seeds is as large as one run's interval,
a single run's figure is mostly noise.

    .venv/bin/python -m benchmarks.seeds [--seeds 0 1 2] [--spec examples/evolution.yaml] [--out runs/seeds] [--dtype float32]

Each seed takes as long as one ``make run`` (about 20 minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

FIGURES = ("directASR", "adversarialASR", "sampledASR", "contrastRefusalRate", "benignRefusalRate", "redteamASR", "qaAccuracy")


def run_seed(spec: dict, seed: int, dtype: str | None, out: Path) -> dict:
    """Run the evolution with ``seed`` (and ``dtype`` for both models) and return its report."""
    doc = json.loads(json.dumps(spec))
    doc["spec"]["seed"] = seed
    if dtype:
        for role in ("target", "redTeam"):
            doc["spec"][role]["dtype"] = dtype
    folder = out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / "evolution.yaml"
    spec_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "seas_operator.cli", "run", str(spec_file), "--output", str(folder / "run"), "--quiet"])
    if proc.returncode not in (0,):
        raise SystemExit(f"seed {seed}: seas run exited {proc.returncode}")
    return json.loads((folder / "run" / "report.json").read_text())


def summarize(reports: list[dict]) -> list[str]:
    """One line per (round, figure): mean, sd and range over seeds, and the mean interval width of one run."""
    lines = [f"{'round':>5} {'figure':<20} {'mean':>7} {'sd':>7} {'min':>7} {'max':>7} {'one run 95% width':>18}"]
    rounds = sorted({r["round"] for report in reports for r in report["rounds"]})
    for round_ in rounds:
        for figure in FIGURES:
            rates = [r[figure] for report in reports for r in report["rounds"] if r["round"] == round_ and r.get(figure) and r[figure]["n"]]
            if not rates:
                continue
            values = [rate["rate"] for rate in rates]
            width = statistics.fmean(rate["high"] - rate["low"] for rate in rates)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            lines.append(f"{round_:>5} {figure:<20} {statistics.fmean(values):7.3f} {sd:7.3f} {min(values):7.3f} {max(values):7.3f} {width:18.3f}")
    gates = [[bool(r["gate"] and r["gate"]["passed"]) for r in report["rounds"] if r["round"] > 0] for report in reports]
    lines.append(f"gate passed per round, per seed: {gates}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/evolution.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/seeds")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="override both models' dtype")
    args = parser.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    reports = [run_seed(spec, seed, args.dtype, Path(args.out)) for seed in args.seeds]
    print("\n".join(summarize(reports)))


if __name__ == "__main__":
    main()
