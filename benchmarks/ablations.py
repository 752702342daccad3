"""Benchmark: what each of issue 10's choices does, one setting changed at a time.

Runs a SafetyEvolution (default ``examples/evolution.yaml``) once per variant with
one setting changed from the example, each into its own output folder (resumable:
a finished variant is not rerun), with ``--rounds`` rounds (1 by default, to fit a
CPU session; the baseline row is the same spec unchanged), then prints, per
variant, the last round's direct, adversarial and red-team ASR and benign refusal,
each as k/n with its 95% interval, and the target's pairs with the share that came
from its own answers.

    .venv/bin/python -m benchmarks.ablations [--variants baseline responses-1 fallback-on sft-0 on-goal-off] [--rounds 1] [--out runs/ablations]

With ``attack.onGoalCheck`` off the red-team ASR counts off-goal prompts as
successes, so it measures something else; the table adds, for every variant, the
red-team ASR re-judged with the default on-goal check from the last round's
records (``red-team ASR, on-goal``), which is comparable across variants.

Each variant takes one round-0 evaluation plus ``--rounds`` rounds: about 12 minutes
on two cores with one round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from seas_runtime import data
from seas_runtime.figures import redteam_success
from seas_runtime.judges.base import Verdict
from seas_runtime.on_goal import off_goal_reason
from seas_runtime.settings import AttackSpec

Spec = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Spec], None]:
    def apply(spec: Spec) -> None:
        node = spec
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return apply


VARIANTS: dict[str, tuple[str, Callable[[Spec], None]]] = {
    "baseline": ("the example as it is", lambda spec: None),
    "responses-1": ("attack.responsesPerPrompt 4 -> 1", _set("attack.responsesPerPrompt", 1)),
    "fallback-on": ("pairs.refusalFallback off -> on", _set("pairs.refusalFallback", True)),
    "sft-0": ("training.target.sftWeight 1 -> 0", _set("training.target.sftWeight", 0.0)),
    "on-goal-off": ("attack.onGoalCheck on -> off", _set("attack.onGoalCheck", False)),
}
FIGURES = (("directASR", "direct ASR"), ("adversarialASR", "adversarial ASR"), ("redteamASR", "red-team ASR"),
           ("redteamOnGoal", "red-team ASR, on-goal"), ("benignRefusalRate", "benign refusal"), ("contrastRefusalRate", "contrast refusal"))


def on_goal_redteam_asr(records: Path) -> dict:
    """The red-team ASR from an evaluation's records, re-judged with the default on-goal check (as the evaluation does with it on)."""
    seeds = {item.id: item for item in data.load("seeds")}
    rows = [row for row in map(json.loads, records.read_text().splitlines()) if row.get("set") == "redteam"]
    reasons = [off_goal_reason(row["prompt"], seeds[row["seed_id"]].prompt, seeds[row["seed_id"]].category, row.get("offGoal") == "fallback",
                               row.get("perplexity"), AttackSpec()) for row in rows]
    return redteam_success([Verdict(row["verdict"]) for row in rows], reasons).model_dump()


def run_variant(doc: dict, name: str, rounds: int, out: Path) -> dict:
    """Run the evolution with variant ``name`` applied and ``rounds`` rounds; return its report."""
    doc = json.loads(json.dumps(doc))
    doc["spec"]["rounds"] = rounds
    VARIANTS[name][1](doc["spec"])
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / "evolution.yaml"
    spec_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "seas_operator.cli", "run", str(spec_file), "--output", str(folder / "run"), "--quiet"])
    if proc.returncode != 0:
        raise SystemExit(f"variant {name}: seas run exited {proc.returncode}")
    report = json.loads((folder / "run" / "report.json").read_text())
    for number, figures in enumerate(report["rounds"]):
        figures["redteamOnGoal"] = on_goal_redteam_asr(folder / "run" / f"r{number}" / "evaluate" / "records.jsonl")
    return report


def cell(rate: dict | None) -> str:
    if not rate or not rate.get("n"):
        return "—"
    return f"{rate['k']}/{rate['n']} = {100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def table(reports: dict[str, dict]) -> list[str]:
    """A Markdown table: one row per variant, the last round's figures (round 0's in brackets for the baseline row)."""
    header = "| variant | change | " + " | ".join(label for _, label in FIGURES) + " | target pairs (own answers) |"
    lines = [header, "|" + "---|" * (len(FIGURES) + 3)]
    for name, report in reports.items():
        last = report["rounds"][-1]
        pairs = last.get("pairs") or {}
        own = pairs.get("targetOwn", "?")
        pair_text = f"{pairs.get('target', '—')} ({own} own, {pairs.get('helpful', '?')} helpful)" if pairs else "—"
        lines.append(f"| {name} | {VARIANTS[name][0]} | " + " | ".join(cell(last.get(key)) for key, _ in FIGURES) + f" | {pair_text} |")
    round0 = next(iter(reports.values()))["rounds"][0]
    lines.append("| round 0 | the untouched target | " + " | ".join(cell(round0.get(key)) for key, _ in FIGURES) + " | — |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/evolution.yaml")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="runs/ablations")
    args = parser.parse_args()
    doc = yaml.safe_load(Path(args.spec).read_text())
    reports = {name: run_variant(doc, name, args.rounds, Path(args.out)) for name in args.variants}
    print("\n".join(table(reports)))


if __name__ == "__main__":
    main()
