"""The operator end to end, over real HTTP, against the kmock Kubernetes API emulator.

The operator runs as its own process (``seas operator``); the test plays the
job controller by running each child's container command on this machine with
the embedded model and tiny sizes, then writing the Pod termination message and
the child's status back.

Not proven here (the emulator cannot): server-side schema validation and
defaulting, RBAC enforcement, admission, real Job/Pod/Kubeflow controllers and
garbage collection through ownerReferences (checked structurally instead).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import head
from tests.helpers.helm_tools import metric_names_used
from tests.helpers.operator_harness import Emulator, JobController, OperatorProcess, wait_for




def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def tiny_evolution(tmp_path: Path, name: str, cache: Path, **spec_overrides) -> dict:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    # The stage pods cache the embedded model on the artifact volume; reuse this machine's copy.
    (artifacts / ".cache").mkdir(exist_ok=True)
    link = artifacts / ".cache" / "smollm2-135m-instruct"
    if not link.exists():
        link.symlink_to(cache)
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    spec = {
        "rounds": 1,
        "target": {"model": "embedded:smollm2-135m-instruct"},
        "redTeam": {"model": "embedded:smollm2-135m-instruct"},
        "classifier": {"type": "refusal-match"},
        "attack": {"samplesPerSeed": 2, "responsesPerPrompt": 1, "maxSeeds": 3, "maxNewTokens": 16},
        "training": {"target": {"learningRate": 1e-3}, "redTeam": {"learningRate": 1e-3}, "batchSize": 2, "maxLength": 64, "maxPairs": 3},
        "pairs": {"helpfulPairs": 1, "refusalFallback": True},  # a tiny round may get no safe answer of its own
        "evaluation": {"maxNewTokens": 12, "knowledgeContexts": ["none"]},
        "data": {
            "heldout": head("heldout_adversarial.jsonl", 4, data_dir),
            "direct": head("direct.jsonl", 3, data_dir),
            "contrast": head("contrast.jsonl", 2, data_dir),
            "benign": head("benign.jsonl", 3, data_dir),
            "knowledge": head("knowledge_qa.jsonl", 6, data_dir),
            "helpful": head("helpful_train.jsonl", 2, data_dir),
        },
        "gates": {"maxTargetASR": 1.0, "maxAccuracyDrop": 1.0, "maxBenignRefusalRate": 1.0, "maxJudgeErrorRate": 1.0},
        "retries": 2,
        "storage": {"mountPath": str(artifacts)},
        "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi"},
    }
    for key, value in spec_overrides.items():
        spec[key] = value
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}, "spec": spec}


def drive(controller: JobController, emulator: Emulator, name: str, until, timeout: float, between=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        controller.step()
        obj = emulator.evolution(name)
        if until(obj):
            return obj
        if between:
            between()
        time.sleep(0.5)
    raise AssertionError(f"timed out; status: {json.dumps(emulator.evolution(name).get('status'), indent=1)[:3000]}")


@pytest.mark.model
def test_evolution_runs_to_ready_through_failures_and_a_restart(emulator, tmp_path, embedded_cache):
    """A full round: adopt-after-restart, two failed attempts then success, figures in status and /metrics."""
    op = OperatorProcess(emulator, tmp_path)
    op.start()
    try:
        emulator.create_evolution(tiny_evolution(tmp_path, "demo", embedded_cache))
        controller = JobController(emulator, tmp_path, fail={"demo-r1-attack": 2})
        # Hold the first train-target child so the operator can be killed while the stage runs.
        held = {"done": False}
        controller.hold = lambda child: child["metadata"]["name"] == "demo-r1-train-target" and not held["done"]

        def restart_when_training() -> None:
            if held["done"]:
                return
            names = {c["metadata"]["name"] for c in emulator.children()}
            if "demo-r1-train-target" in names:
                op.kill()
                op.start()
                held["done"] = True

        obj = drive(controller, emulator, "demo", lambda o: condition(o, "Ready").get("status") == "True", 900, restart_when_training)
    finally:
        log = op.log()
        op_metrics = op.metrics() if op.alive() else ""
        op.stop()
    assert held["done"], "the operator was never restarted mid-stage"
    status = obj["status"]
    # Every stage ran exactly once, except the attack which failed twice before it ran.
    children = Counter(c["metadata"]["name"] for c in emulator.children())
    assert all(n == 1 for n in children.values())
    assert set(children) == {
        "demo-r0-evaluate", "demo-r1-attack", "demo-r1-attack-retry1", "demo-r1-attack-retry2",
        "demo-r1-pairs", "demo-r1-train-target", "demo-r1-train-redteam", "demo-r1-evaluate",
    }, log
    assert sorted(controller.runs) == sorted(n for n in children if n not in ("demo-r1-attack", "demo-r1-attack-retry1"))
    started = Counter(re.search(r"created \w+ (\S+)", e["message"]).group(1) for e in emulator.events() if e.get("reason") == "StageStarted")
    assert all(n == 1 for n in started.values()), started
    assert status["stages"]["r1/attack"]["failures"] == 2
    assert status["stages"]["r1/attack"]["state"] == "succeeded"
    assert condition(obj, "Degraded")["status"] == "False"
    assert status["phase"] == "Succeeded"
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    for entry in status["rounds"]:
        for figure, n in (("directASR", 3), ("adversarialASR", 4), ("sampledASR", 4), ("contrastRefusalRate", 2), ("benignRefusalRate", 3), ("qaAccuracy", 6)):
            rate = entry[figure]
            assert rate["n"] == n and 0.0 <= rate["low"] <= rate["rate"] <= rate["high"] <= 1.0, (figure, rate)
        assert entry["judge"]["type"] == "refusal-match"
    assert status["rounds"][1]["regression"]["n"] == 7 and status["rounds"][1]["accuracyChange"]["n"] == 6  # paired with round 0
    assert status["rounds"][1]["gate"]["passed"] is True
    assert status["promotedModel"].endswith("/r1/train-target/model")
    # The metrics the alerts and dashboard use are on /metrics, labelled by namespace, evolution and round.
    assert op_metrics

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(op_metrics) for s in f.samples}
    exported = {name for name, _ in samples}
    # Every metric the alerts and the dashboard query is exported (the paired changes and the
    # gate thresholds included: two rounds are evaluated and all three gates are set).
    assert metric_names_used() <= exported, metric_names_used() - exported
    demo = (("evolution", "demo"), ("namespace", "default"))

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(demo + tuple(labels.items()))))]

    assert value("seas_adversarial_asr_ratio", round="1") == pytest.approx(status["rounds"][1]["adversarialASR"]["rate"])
    assert value("seas_direct_asr_high_ratio", round="0") == pytest.approx(status["rounds"][0]["directASR"]["high"])
    assert value("seas_qa_accuracy_ratio", round="0") == pytest.approx(status["rounds"][0]["qaAccuracy"]["rate"])
    assert value("seas_safety_regressed") == (1.0 if status["rounds"][1]["regression"]["significant"] else 0.0)
    assert value("seas_condition", type="Ready") == 1.0
    assert value("seas_condition", type="Degraded") == 0.0
    assert value("seas_stage_failures", round="1", stage="attack") == 2.0
    assert value("seas_gate_passed", round="1") == 1.0
    assert value("seas_current_round") == 1.0


def test_a_stage_that_keeps_failing_degrades_the_evolution(emulator, operator, tmp_path):
    emulator.create_evolution(tiny_evolution(tmp_path, "flaky", tmp_path, retries=1))
    controller = JobController(emulator, tmp_path, fail={"flaky-r0-evaluate": 10})
    obj = drive(controller, emulator, "flaky", lambda o: condition(o, "Degraded").get("status") == "True", 120)
    degraded = condition(obj, "Degraded")
    assert degraded["reason"] == "StageFailed"
    assert "r0/evaluate failed 2 times" in degraded["message"]
    assert "simulated node failure" in degraded["message"] or "Error" in degraded["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["phase"] == "Degraded"
    assert sorted(c["metadata"]["name"] for c in emulator.children()) == ["flaky-r0-evaluate", "flaky-r0-evaluate-retry1"]
    warnings = [e for e in emulator.events() if e.get("type") == "Warning" and e.get("reason") == "StageFailed"]
    assert len(warnings) == 2
    assert operator.alive()


MALFORMED = {
    "no-spec": None,
    "rounds-zero": {"rounds": 0},
    "rounds-string": {"rounds": "three"},
    "missing-target": {"target": None},
    "unknown-field": {"atack": {"samplesPerSeed": 2}},
    "bad-engine": {"target": {"model": "x", "engine": "tensorrt"}},
    "bad-classifier": {"classifier": {"type": "gpt-judge"}},
    "negative-lr": {"training": {"target": {"learningRate": -1}}},
    "bad-cron": {"schedule": "every tuesday"},
    "spec-is-a-list": ["rounds", 3],
}


def test_malformed_evolutions_get_a_clear_message_and_never_crash_the_operator(emulator, operator, tmp_path):
    base = tiny_evolution(tmp_path, "x", tmp_path)["spec"]
    for name, change in MALFORMED.items():
        if change is None:
            body = {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}}
        elif isinstance(change, list):
            body = {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}, "spec": change}
        else:
            spec = {**base, **change}
            spec = {k: v for k, v in spec.items() if v is not None}
            body = {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}, "spec": spec}
        emulator.create_evolution(body)
    expected_field = {
        "no-spec": "spec", "rounds-zero": "spec.rounds", "rounds-string": "spec.rounds", "missing-target": "spec.target",
        "unknown-field": "spec.atack", "bad-engine": "spec.target.engine", "bad-classifier": "spec.classifier.type",
        "negative-lr": "spec.training.target.learningRate", "bad-cron": "spec.schedule", "spec-is-a-list": "spec",
    }

    def all_reported() -> bool:
        return all(condition(emulator.evolution(n), "Degraded").get("reason") == "InvalidSpec" for n in MALFORMED)

    wait_for(all_reported, 60, "every malformed evolution to be marked InvalidSpec")
    events = emulator.events()
    for name, field_path in expected_field.items():
        degraded = condition(emulator.evolution(name), "Degraded")
        assert degraded["status"] == "True"
        assert field_path in degraded["message"], (name, degraded["message"])
        assert any(e.get("reason") == "InvalidSpec" and e.get("involvedObject", {}).get("name") == name for e in events), name
    assert emulator.children() == []
    assert operator.alive()
