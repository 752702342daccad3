"""Evaluate-only cycles end to end: the operator re-checks two models on a weekly schedule against the kmock emulator.

The operator runs as its own process over real HTTP. No model runs: the test plays the Job
controller and reports each evaluation's result as the evaluate stage would (its paired change
against the last cycle made by ``seas_runtime.stats.paired_change``). A week passes by moving the
finished cycle's finish time a week back in status, which is what the schedule reads.

"steady" rises a little (4 prompts worse, 1 better of 96: p = 0.375) and stays not regressed;
"worse" rises a lot (20 worse, 1 better: p < 0.001) and turns SafetyRegressed, in status and in
``/metrics``. About 20 s (under 60 s on a loaded machine).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from prometheus_client.parser import text_string_to_metric_families

from seas_runtime.contract import dump_result
from tests.helpers.factories import change, evaluate_result
from tests.helpers.operator_harness import KINDS, SEVO, Emulator, OperatorProcess, wait_for

JOBS = KINDS["Job"].format(ns="default")
RISE = {"steady": change(4, 1), "worse": change(20, 1)}


def evolution(name: str) -> dict:
    spec = {"mode": "evaluate", "schedule": "0 6 * * 1", "target": {"model": f"org/{name}-chat"}, "redTeam": {"model": "org/red"},
            "resources": {"gpus": 0}, "retries": 0}
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}, "spec": spec}


def status(emulator: Emulator, name: str) -> dict:
    return emulator.evolution(name).get("status") or {}


def condition(emulator: Emulator, name: str, type_: str) -> dict:
    return next((c for c in status(emulator, name).get("conditions", []) if c["type"] == type_), {})


def job(emulator: Emulator, name: str) -> dict:
    return wait_for(lambda: next((c for c in emulator.children() if c["metadata"]["name"] == name), None), 30, f"Job {name}")


def stage_config(child: dict) -> dict:
    env = child["spec"]["template"]["spec"]["containers"][0]["env"]
    return json.loads(next(e["value"] for e in env if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))


def finish(emulator: Emulator, child: dict, unsafe: int, regression=None) -> None:
    """The Job's pod ends with the evaluation's result as its termination message, and the Job completes."""
    config = stage_config(child)
    result = evaluate_result(0, unsafe=unsafe, regression=regression).model_copy(update=dict(records=config["outputDir"] + "/records.jsonl"))
    name = child["metadata"]["name"]
    emulator.post("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-pod", "namespace": "default", "labels": dict(child["spec"]["template"]["metadata"]["labels"]),
                     "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": child["metadata"]["uid"], "controller": True}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 0, "message": dump_result(result)}}}]},
    })
    emulator.patch(f"{JOBS}/{name}/status", {"status": {"conditions": [{"type": "Complete", "status": "True", "reason": "Completed"}], "succeeded": 1}})


def a_week_passes(emulator: Emulator, name: str) -> None:
    """Move the finished cycle's finish time eight days back: the weekly schedule is due at once."""
    stages = status(emulator, name)["stages"]
    past = (datetime.now(timezone.utc) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    emulator.patch(f"{SEVO.format(ns='default')}/{name}/status", {"status": {"stages": {label: {"finishedAt": past} for label in stages}}})


def regressed_metric(op: OperatorProcess) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(op.metrics())}
    return {s.labels["evolution"]: s.value for s in families["seas_safety_regressed"].samples}



def test_a_weekly_recheck_reports_a_regression_only_when_it_is_significant(emulator, operator):
    started = time.monotonic()
    for name in RISE:
        emulator.create_evolution(evolution(name))
    # Cycle 0: the evaluation only (no initialize, attack, pairs or training), the reference of the next week.
    for name in RISE:
        finish(emulator, job(emulator, f"{name}-r0-evaluate"), unsafe=10)
    for name in RISE:
        wait_for(lambda: [h["cycle"] for h in status(emulator, name).get("history", [])] == [0] and status(emulator, name).get("nextScheduleTime"),
                 30, f"{name}: cycle 0 in history and the next re-check scheduled")
        assert (condition(emulator, name, "SafetyRegressed")["reason"], condition(emulator, name, "Ready")["status"]) == ("NoPreviousCycle", "True")
    assert sorted(c["metadata"]["name"] for c in emulator.children()) == ["steady-r0-evaluate", "worse-r0-evaluate"]

    # A week later: cycle 1 re-checks the same model and pairs its evaluation with cycle 0's records.
    for name in RISE:
        a_week_passes(emulator, name)
    for name, rise in RISE.items():
        child = job(emulator, f"{name}-c1-r0-evaluate")
        config = stage_config(child)
        assert config["target"]["model"] == f"org/{name}-chat"
        assert config["previousRecords"] == f"/artifacts/default/{name}/c0/r0/evaluate/records.jsonl"
        finish(emulator, child, unsafe=10 + rise.b - rise.c, regression=rise)
    for name in RISE:
        wait_for(lambda: [h["cycle"] for h in status(emulator, name).get("history", [])] == [0, 1], 30, f"{name}: cycle 1 in history")

    steady, worse = condition(emulator, "steady", "SafetyRegressed"), condition(emulator, "worse", "SafetyRegressed")
    assert (steady["status"], steady["reason"]) == ("False", "NoSignificantRegression")
    assert "cycle 1 of org/steady-chat against cycle 0: +3.1 points [-2.2, +9.3], 4 worse / 1 better of 96, p = 0.375" == steady["message"]
    assert (worse["status"], worse["reason"]) == ("True", "SignificantRegression")
    assert worse["message"].startswith("cycle 1 of org/worse-chat is less safe than cycle 0: +19.8 points")
    history = status(emulator, "worse")["history"]
    assert history[1]["model"] == "org/worse-chat" and history[1]["evaluation"]["directASR"]["k"] == 29
    assert history[1]["evaluation"]["regression"]["significant"] is True and history[0]["evaluation"]["directASR"]["k"] == 10
    assert wait_for(lambda: regressed_metric(operator) == {"steady": 0.0, "worse": 1.0} and regressed_metric(operator), 15,
                    "seas_safety_regressed from the new status")
    assert [e for e in emulator.events() if e.get("reason") == "CycleStarted" and e["involvedObject"]["name"] == "worse"]
    assert not [e for e in emulator.events() if e.get("reason") in ("InvalidSpec", "ReconcileError")]
    assert time.monotonic() - started < 60
