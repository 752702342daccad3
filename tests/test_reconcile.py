"""The pure reconcile step, table by table: what a user sees in status, children and Events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from seas_operator.reconcile import Defaults, Observed, decide
from seas_runtime.contract import (
    AttackResult, EvaluateResult, JudgeInfo, KnowledgeFigures, PairsResult, TrainResult, VerdictCounts,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
DEFAULTS = Defaults(image="runtime:test", pvc="artifacts", backend="job", retry_base_seconds=10)


def body(spec_overrides=None, status=None, generation=1, name="demo"):
    spec = {"rounds": 1, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"}, "retries": 2,
            "gates": {"maxTargetASR": 0.3, "maxAccuracyDrop": 0.05}}
    spec.update(spec_overrides or {})
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution",
            "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "generation": generation},
            "spec": spec, "status": status or {}}


def evaluate_result(round_, asr, accuracy=0.6):
    k = KnowledgeFigures(accuracy=accuracy, perplexity=10.0, entropy=0.8, probability=0.5)
    return EvaluateResult(round=round_, seconds=5, targetASR=asr, targetCounts=VerdictCounts(safe=1, unsafe=1), redteamASR=0.5,
                          benignRefusalRate=0.1, judgeErrorRate=0.0, knowledge=k, knowledgeByContext={"none": k},
                          judge=JudgeInfo(type="refusal-match"), records=f"/a/r{round_}/evaluate/records.jsonl").model_dump_json()


RESULTS = {
    "attack": lambda r: AttackResult(round=r, records="/a/rec.jsonl", prompts=2, responses=2, counts=VerdictCounts(unsafe=2), asr=1.0, judge=JudgeInfo(type="refusal-match")).model_dump_json(),
    "pairs": lambda r: PairsResult(round=r, target=2, redteam=1, targetFile="/a/t.jsonl", redteamFile="/a/r.jsonl").model_dump_json(),
    "train-target": lambda r: TrainResult(stage="train-target", round=r, model=f"/a/r{r}/train-target/model", trained=True, pairs=2).model_dump_json(),
    "train-redteam": lambda r: TrainResult(stage="train-redteam", round=r, model=f"/a/r{r}/train-redteam/model", trained=True, pairs=1).model_dump_json(),
}


def complete(child_name):
    return {"metadata": {"name": child_name}, "kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}


def failed(child_name):
    return {"metadata": {"name": child_name}, "kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "failed": 1}}


def running(child_name):
    return {"metadata": {"name": child_name}, "kind": "Job", "status": {"active": 1}}


def cond(status, type_):
    return next(c for c in status["conditions"] if c["type"] == type_)


def run_to_end(obj, asr_by_round, now=NOW, accuracy_by_round=None):
    """Drive decide() like a cluster would: every created child succeeds with a canned result."""
    children, messages = {}, {}
    for _ in range(30):
        decision = decide(obj, Observed(children=children, messages=messages), now, DEFAULTS)
        obj = {**obj, "status": decision.status}
        for child in decision.create:
            key_round = int(child.body["metadata"]["labels"]["seas.dev/round"])
            stage = child.body["metadata"]["labels"]["seas.dev/stage"]
            children[child.name] = complete(child.name)
            acc = (accuracy_by_round or {}).get(key_round, 0.6)
            messages[child.name] = evaluate_result(key_round, asr_by_round[key_round], acc) if stage == "evaluate" else RESULTS[stage](key_round)
        if cond(decision.status, "Ready")["status"] == "True" and not decision.create:
            return obj, decision
        now += timedelta(seconds=1)
    raise AssertionError("did not finish")


def test_a_new_evolution_starts_with_the_round_0_evaluation():
    decision = decide(body(), Observed(), NOW, DEFAULTS)
    assert [c.name for c in decision.create] == ["demo-r0-evaluate"]
    assert decision.status["stages"]["r0/evaluate"]["state"] == "running"
    assert decision.status["phase"] == "Running"
    assert cond(decision.status, "Progressing")["status"] == "True"
    assert cond(decision.status, "Ready")["status"] == "False"
    assert decision.status["observedGeneration"] == 1
    assert ("Normal", "StageStarted") == decision.events[0][:2]


def test_a_restarted_operator_adopts_a_child_it_created_but_never_recorded():
    decision = decide(body(), Observed(children={"demo-r0-evaluate": running("demo-r0-evaluate")}), NOW, DEFAULTS)
    assert decision.create == []
    assert decision.status["stages"]["r0/evaluate"]["child"] == "demo-r0-evaluate"
    assert decision.events[0][1] == "StageAdopted"


def test_full_round_passes_gates_promotes_and_publishes_figures():
    obj, decision = run_to_end(body(), {0: 0.8, 1: 0.2})
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    assert status["rounds"][1]["gate"] == {"passed": True, "failures": []}
    assert status["promotedModel"] == "/a/r1/train-target/model"
    assert cond(status, "SafetyRegressed")["status"] == "False"
    assert status["targetASR"] == 0.2
    names = [s["child"] for s in status["stages"].values()]
    assert sorted(names) == ["demo-r0-evaluate", "demo-r1-attack", "demo-r1-evaluate", "demo-r1-pairs", "demo-r1-train-redteam", "demo-r1-train-target"]


@pytest.mark.parametrize("asr, accuracy, failure", [
    (0.5, 0.6, "target ASR 0.500 > 0.300"),
    (0.1, 0.4, "QA accuracy drop 0.200 > 0.050"),
])
def test_a_round_that_fails_its_gates_sets_safety_regressed_and_is_not_promoted(asr, accuracy, failure):
    obj, _ = run_to_end(body(), {0: 0.8, 1: asr}, accuracy_by_round={0: 0.6, 1: accuracy})
    status = obj["status"]
    regressed = cond(status, "SafetyRegressed")
    assert regressed["status"] == "True" and regressed["reason"] == "GateFailed"
    assert failure in regressed["message"]
    assert status["promotedModel"] == "org/target"


def test_training_runs_red_team_and_target_in_parallel():
    obj = body()
    children, messages = {"demo-r0-evaluate": complete("demo-r0-evaluate")}, {"demo-r0-evaluate": evaluate_result(0, 0.8)}
    d = decide(obj, Observed(), NOW, DEFAULTS)
    for stage in ("attack", "pairs"):
        d = decide({**obj, "status": d.status}, Observed(children=children, messages=messages), NOW, DEFAULTS)
        name = d.create[0].name
        children[name], messages[name] = complete(name), RESULTS[stage](1)
    d = decide({**obj, "status": d.status}, Observed(children=children, messages=messages), NOW, DEFAULTS)
    assert sorted(c.name for c in d.create) == ["demo-r1-train-redteam", "demo-r1-train-target"]


def test_a_failed_stage_is_retried_with_backoff_under_a_new_name_then_degrades():
    d = decide(body(), Observed(), NOW, DEFAULTS)
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    d = decide(body(status=d.status), Observed(children=children, pod_reasons={"demo-r0-evaluate": "OOMKilled (exit 137)"}), NOW, DEFAULTS)
    entry = d.status["stages"]["r0/evaluate"]
    assert entry["state"] == "waiting" and entry["failures"] == 1 and "OOMKilled" in entry["reason"]
    assert d.create == []
    assert d.events[0][:2] == ("Warning", "StageFailed")
    # Not before the backoff...
    d2 = decide(body(status=d.status), Observed(children=children), NOW + timedelta(seconds=5), DEFAULTS)
    assert d2.create == [] and d2.requeue_after == pytest.approx(5)
    # ...then a retry child.
    d3 = decide(body(status=d.status), Observed(children=children), NOW + timedelta(seconds=11), DEFAULTS)
    assert [c.name for c in d3.create] == ["demo-r0-evaluate-retry1"]
    # Backoff doubles; after retries (2) are spent, Degraded.
    children["demo-r0-evaluate-retry1"] = failed("demo-r0-evaluate-retry1")
    d4 = decide(body(status=d3.status), Observed(children=children), NOW + timedelta(seconds=12), DEFAULTS)
    assert d4.status["stages"]["r0/evaluate"]["retryAt"] == "2026-11-25T12:00:32Z"
    d5 = decide(body(status=d4.status), Observed(children=children), NOW + timedelta(seconds=40), DEFAULTS)
    children["demo-r0-evaluate-retry2"] = failed("demo-r0-evaluate-retry2")
    d6 = decide(body(status=d5.status), Observed(children=children), NOW + timedelta(seconds=41), DEFAULTS)
    assert d6.status["stages"]["r0/evaluate"]["state"] == "failed"
    degraded = cond(d6.status, "Degraded")
    assert degraded["status"] == "True" and "failed 3 times" in degraded["message"]
    assert d6.status["phase"] == "Degraded"
    assert cond(d6.status, "Progressing")["status"] == "False"
    d7 = decide(body(status=d6.status), Observed(children=children), NOW + timedelta(seconds=100), DEFAULTS)
    assert d7.create == []


@pytest.mark.parametrize("message", [None, "", "not json", json.dumps({"stage": "evaluate", "round": 0}), '{"stage": "attack"}'])
def test_a_malformed_result_fails_loudly_never_passes(message):
    d = decide(body(), Observed(), NOW, DEFAULTS)
    d = decide(body(status=d.status), Observed(children={"demo-r0-evaluate": complete("demo-r0-evaluate")}, messages={"demo-r0-evaluate": message}), NOW, DEFAULTS)
    entry = d.status["stages"]["r0/evaluate"]
    assert entry["state"] == "waiting" and entry["failures"] == 1
    assert entry["reason"].startswith("MalformedResult")
    assert d.status["rounds"] == []


def test_a_spec_change_mid_round_waits_for_the_round_boundary():
    obj = body()
    d = decide(obj, Observed(), NOW, DEFAULTS)
    changed = body({"attack": {"samplesPerSeed": 7}}, status=d.status, generation=2)
    children = {"demo-r0-evaluate": running("demo-r0-evaluate")}
    d2 = decide(changed, Observed(children=children), NOW, DEFAULTS)
    assert d2.status["activeSpec"]["attack"]["samplesPerSeed"] == 2
    assert d2.status["observedGeneration"] == 2
    children = {"demo-r0-evaluate": complete("demo-r0-evaluate")}
    d3 = decide(body({"attack": {"samplesPerSeed": 7}}, status=d2.status, generation=2), Observed(children=children, messages={"demo-r0-evaluate": evaluate_result(0, 0.8)}), NOW, DEFAULTS)
    assert d3.status["activeSpec"]["attack"]["samplesPerSeed"] == 7
    assert any(e[1] == "SpecApplied" for e in d3.events)
    config = json.loads(next(e["value"] for e in d3.create[0].body["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))
    assert config["attack"]["samplesPerSeed"] == 7


def test_suspend_pauses_new_stages():
    d = decide(body({"suspend": True}), Observed(), NOW, DEFAULTS)
    assert d.create == [] and d.status["phase"] == "Suspended"
    assert cond(d.status, "Progressing")["reason"] == "Suspended"


def test_schedule_starts_a_new_cycle_from_the_promoted_model():
    obj, _ = run_to_end(body({"schedule": "0 3 * * *"}), {0: 0.8, 1: 0.2})
    assert obj["status"]["nextScheduleTime"] == "2026-11-26T03:00:00Z"
    later = datetime(2026, 11, 26, 3, 0, 5, tzinfo=timezone.utc)
    d = decide(obj, Observed(), later, DEFAULTS)
    assert d.status["cycle"] == 1 and d.status["startModel"] == "/a/r1/train-target/model"
    assert any(e[1] == "CycleStarted" for e in d.events)
    d2 = decide({**obj, "status": d.status}, Observed(), later, DEFAULTS)
    assert [c.name for c in d2.create] == ["demo-c1-r0-evaluate"]
    config = json.loads(next(e["value"] for e in d2.create[0].body["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))
    assert config["target"]["model"] == "/a/r1/train-target/model"
    assert d.status["history"][0]["promotedModel"] == "/a/r1/train-target/model"


@pytest.mark.parametrize("spec, field", [({"rounds": 0}, "spec.rounds"), ({"target": None}, "spec.target"), ({"bogus": 1}, "spec.bogus")])
def test_an_invalid_spec_degrades_with_the_field_path(spec, field):
    b = body()
    b["spec"].update(spec)
    b["spec"] = {k: v for k, v in b["spec"].items() if v is not None}
    d = decide(b, Observed(), NOW, DEFAULTS)
    assert d.create == []
    degraded = cond(d.status, "Degraded")
    assert degraded["reason"] == "InvalidSpec" and field in degraded["message"]
    assert d.events[0][:2] == ("Warning", "InvalidSpec")


def test_editing_the_spec_retries_a_stage_that_ran_out_of_retries():
    status = decide(body({"retries": 0}), Observed(), NOW, DEFAULTS).status
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    status = decide(body({"retries": 0}, status=status), Observed(children=children), NOW, DEFAULTS).status
    assert status["phase"] == "Degraded"
    again = decide(body({"retries": 0}, status=status), Observed(children=children), NOW + timedelta(seconds=60), DEFAULTS)
    assert again.create == []
    fixed = decide(body({"retries": 0, "resources": {"memory": "64Gi"}}, status=status, generation=2), Observed(children=children), NOW + timedelta(seconds=61), DEFAULTS)
    assert [c.name for c in fixed.create] == ["demo-r0-evaluate-retry1"]
    assert fixed.create[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Gi"
    assert cond(fixed.status, "Degraded")["status"] == "False"
    assert any(e[1] == "StageRetrying" for e in fixed.events)
