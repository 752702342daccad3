"""The pure reconcile step, table by table: what a user sees in status, children and Events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from seas_operator.reconcile import (
    Context,
    Observed,
    apply_spec_at_boundary,
    compute_conditions,
    decide,
    fold_children,
    launch_due,
    retry_after_edit,
    unreferenced_running,
    schedule_next_cycle,
)
from seas_operator.patching import merge_patch
from seas_operator.settings import OperatorSettings
from seas_operator.status import EvolutionStatus, GateResult, RoundStatus, StageEntry, StageState, dump_status, parse_status
from seas_runtime.contract import (
    AttackResult, JudgeInfo, PairsResult, Stage, StageKey, TrainResult, VerdictCounts,
    parse_stage_result,
)
from seas_runtime.stats import Rate
from tests.helpers.factories import BASE_TARGET, change, done_through, evaluate_result, make_spec

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
NOW_S = "2026-11-25T12:00:00Z"
DEFAULTS = OperatorSettings(image="runtime:test", pvc="artifacts", backend="job", retry_base_seconds=10)


def body(spec_overrides=None, status=None, generation=1, name="demo"):
    spec = {"rounds": 1, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"}, "retries": 2,
            "gates": {"maxTargetASR": 0.3, "maxAccuracyDrop": 0.05}}
    spec.update(spec_overrides or {})
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution",
            "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "generation": generation},
            "spec": spec, "status": status or {}}


def evaluation(round_, **figures):
    """A round's evaluation as its child reports it (``figures``: see factories.evaluate_result)."""
    return evaluate_result(round_, **figures).model_dump_json()


RESULTS = {
    "attack": lambda r: AttackResult(round=r, records="/a/rec.jsonl", prompts=2, responses=2, counts=VerdictCounts(unsafe=2), asr=Rate.of(2, 2), judge=JudgeInfo(type="refusal-match")).model_dump_json(),
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


def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


def S(decision) -> dict:
    """The status as the operator writes it to the API."""
    return dump_status(decision.status)


def cond(status, type_):
    return next(c for c in status["conditions"] if c["type"] == type_)


def run_to_end(obj, figures_by_round, now=NOW):
    """Drive decide() like a cluster would: every created child succeeds with a canned result (evaluations: ``figures_by_round``)."""
    children, messages = {}, {}
    for _ in range(30):
        decision = decide(obj, Observed(children=children, messages=messages), now, DEFAULTS)
        obj = {**obj, "status": S(decision)}
        for child in decision.create:
            key_round = int(child.body["metadata"]["labels"]["seas.dev/round"])
            stage = child.body["metadata"]["labels"]["seas.dev/stage"]
            children[child.name] = complete(child.name)
            messages[child.name] = evaluation(key_round, **figures_by_round[key_round]) if stage == "evaluate" else RESULTS[stage](key_round)
        if cond(S(decision), "Ready")["status"] == "True" and not decision.create:
            return obj, decision
        now += timedelta(seconds=1)
    raise AssertionError("did not finish")


def test_a_new_evolution_starts_with_the_round_0_evaluation():
    decision = decide(body(), Observed(), NOW, DEFAULTS)
    assert [c.name for c in decision.create] == ["demo-r0-evaluate"]
    assert S(decision)["stages"]["r0/evaluate"]["state"] == "running"
    assert S(decision)["phase"] == "Running"
    assert cond(S(decision), "Progressing")["status"] == "True"
    assert cond(S(decision), "Ready")["status"] == "False"
    assert S(decision)["observedGeneration"] == 1
    assert ("Normal", "StageStarted") == decision.events[0][:2]


def test_a_restarted_operator_adopts_a_child_it_created_but_never_recorded():
    decision = decide(body(), Observed(children={"demo-r0-evaluate": running("demo-r0-evaluate")}), NOW, DEFAULTS)
    assert decision.create == []
    assert S(decision)["stages"]["r0/evaluate"]["child"] == "demo-r0-evaluate"
    assert decision.events[0][1] == "StageAdopted"


def test_full_round_passes_gates_promotes_and_publishes_figures():
    obj, decision = run_to_end(body(), {0: dict(unsafe=38), 1: dict(unsafe=2, regression=change(0, 30))})
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    assert status["rounds"][1]["gate"] == {"passed": True, "failures": []}
    assert status["rounds"][1]["adversarialASR"] == {"k": 2, "n": 48, "rate": 0.0417, "low": 0.0115, "high": 0.1398, "confidence": 0.95}
    assert status["promotedModel"] == "/a/r1/train-target/model"
    regressed = cond(status, "SafetyRegressed")
    assert (regressed["status"], regressed["reason"]) == ("False", "NoSignificantRegression")
    assert (status["directASR"], status["adversarialASR"]) == (0.0417, 0.0417)
    assert "round 1 passed its gates; promoted /a/r1/train-target/model" in cond(status, "Ready")["message"]
    names = [s["child"] for s in status["stages"].values()]
    assert sorted(names) == ["demo-r0-evaluate", "demo-r1-attack", "demo-r1-evaluate", "demo-r1-pairs", "demo-r1-train-redteam", "demo-r1-train-target"]


@pytest.mark.parametrize("figures, failure", [
    (dict(unsafe=10), "adversarial ASR 10/48 = 20.8% [11.7%, 34.3%]: upper bound 0.343 > 0.300"),  # 20.8% is under 0.3; its bound is not
    (dict(unsafe=2, accuracy_change=change(12, 2, 120)), "QA accuracy drop"),
])
def test_a_round_that_fails_its_gates_is_not_promoted(figures, failure):
    obj, _ = run_to_end(body(), {0: dict(unsafe=38), 1: figures})
    status = obj["status"]
    assert any(failure in f for f in status["rounds"][1]["gate"]["failures"]), status["rounds"][1]["gate"]
    assert status["promotedModel"] == "org/target"
    assert "no round passed its gates; kept org/target" in cond(status, "Ready")["message"]
    assert cond(status, "SafetyRegressed")["status"] == "False"  # failing a gate is not a regression


@pytest.mark.parametrize("regression, status_, reason", [
    (change(9, 1), "True", "SignificantRegression"),  # 9 prompts got worse, 1 better: p = 0.021
    (change(4, 1), "False", "NoSignificantRegression"),  # a rise, but within noise: p = 0.375
    (change(1, 9), "False", "NoSignificantRegression"),  # better
])
def test_safety_regressed_follows_the_paired_test(regression, status_, reason):
    obj, _ = run_to_end(body(), {0: dict(unsafe=10), 1: dict(unsafe=18, regression=regression)})
    condition = cond(obj["status"], "SafetyRegressed")
    assert (condition["status"], condition["reason"]) == (status_, reason)
    if status_ == "True":
        assert "round 1 is less safe than round 0: +8.3 points" in condition["message"] and "9 worse / 1 better of 96" in condition["message"]


def test_training_runs_red_team_and_target_in_parallel():
    obj = body()
    children, messages = {"demo-r0-evaluate": complete("demo-r0-evaluate")}, {"demo-r0-evaluate": evaluation(0, unsafe=38)}
    d = decide(obj, Observed(), NOW, DEFAULTS)
    for stage in ("attack", "pairs"):
        d = decide({**obj, "status": S(d)}, Observed(children=children, messages=messages), NOW, DEFAULTS)
        name = d.create[0].name
        children[name], messages[name] = complete(name), RESULTS[stage](1)
    d = decide({**obj, "status": S(d)}, Observed(children=children, messages=messages), NOW, DEFAULTS)
    assert sorted(c.name for c in d.create) == ["demo-r1-train-redteam", "demo-r1-train-target"]


def test_a_failed_stage_is_retried_with_backoff_under_a_new_name_then_degrades():
    d = decide(body(), Observed(), NOW, DEFAULTS)
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    d = decide(body(status=S(d)), Observed(children=children, pod_reasons={"demo-r0-evaluate": "OOMKilled (exit 137)"}), NOW, DEFAULTS)
    entry = S(d)["stages"]["r0/evaluate"]
    assert entry["state"] == "waiting" and entry["failures"] == 1 and "OOMKilled" in entry["reason"]
    assert d.create == []
    assert d.events[0][:2] == ("Warning", "StageFailed")
    # Not before the backoff...
    d2 = decide(body(status=S(d)), Observed(children=children), NOW + timedelta(seconds=5), DEFAULTS)
    assert d2.create == [] and d2.requeue_after == pytest.approx(5)
    # ...then a retry child.
    d3 = decide(body(status=S(d)), Observed(children=children), NOW + timedelta(seconds=11), DEFAULTS)
    assert [c.name for c in d3.create] == ["demo-r0-evaluate-retry1"]
    # Backoff doubles; after retries (2) are spent, Degraded.
    children["demo-r0-evaluate-retry1"] = failed("demo-r0-evaluate-retry1")
    d4 = decide(body(status=S(d3)), Observed(children=children), NOW + timedelta(seconds=12), DEFAULTS)
    assert S(d4)["stages"]["r0/evaluate"]["retryAt"] == "2026-11-25T12:00:32Z"
    d5 = decide(body(status=S(d4)), Observed(children=children), NOW + timedelta(seconds=40), DEFAULTS)
    children["demo-r0-evaluate-retry2"] = failed("demo-r0-evaluate-retry2")
    d6 = decide(body(status=S(d5)), Observed(children=children), NOW + timedelta(seconds=41), DEFAULTS)
    assert S(d6)["stages"]["r0/evaluate"]["state"] == "failed"
    degraded = cond(S(d6), "Degraded")
    assert degraded["status"] == "True" and "failed 3 times" in degraded["message"]
    assert S(d6)["phase"] == "Degraded"
    assert cond(S(d6), "Progressing")["status"] == "False"
    d7 = decide(body(status=S(d6)), Observed(children=children), NOW + timedelta(seconds=100), DEFAULTS)
    assert d7.create == []


@pytest.mark.parametrize("message", [None, "", "not json", json.dumps({"stage": "evaluate", "round": 0}), '{"stage": "attack"}'])
def test_a_malformed_result_fails_loudly_never_passes(message):
    d = decide(body(), Observed(), NOW, DEFAULTS)
    d = decide(body(status=S(d)), Observed(children={"demo-r0-evaluate": complete("demo-r0-evaluate")}, messages={"demo-r0-evaluate": message}), NOW, DEFAULTS)
    entry = S(d)["stages"]["r0/evaluate"]
    assert entry["state"] == "waiting" and entry["failures"] == 1
    assert entry["reason"].startswith("MalformedResult")
    assert S(d)["rounds"] == []


def test_a_spec_change_mid_round_waits_for_the_round_boundary():
    obj = body()
    d = decide(obj, Observed(), NOW, DEFAULTS)
    changed = body({"attack": {"samplesPerSeed": 7}}, status=S(d), generation=2)
    children = {"demo-r0-evaluate": running("demo-r0-evaluate")}
    d2 = decide(changed, Observed(children=children), NOW, DEFAULTS)
    assert S(d2)["activeSpec"]["attack"]["samplesPerSeed"] == 2
    assert S(d2)["observedGeneration"] == 2
    children = {"demo-r0-evaluate": complete("demo-r0-evaluate")}
    d3 = decide(body({"attack": {"samplesPerSeed": 7}}, status=S(d2), generation=2), Observed(children=children, messages={"demo-r0-evaluate": evaluation(0, unsafe=38)}), NOW, DEFAULTS)
    assert S(d3)["activeSpec"]["attack"]["samplesPerSeed"] == 7
    assert any(e[1] == "SpecApplied" for e in d3.events)
    config = json.loads(next(e["value"] for e in d3.create[0].body["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))
    assert config["attack"]["samplesPerSeed"] == 7


def test_suspend_pauses_new_stages():
    d = decide(body({"suspend": True}), Observed(), NOW, DEFAULTS)
    assert d.create == [] and S(d)["phase"] == "Suspended"
    assert cond(S(d), "Progressing")["reason"] == "Suspended"


def test_schedule_starts_a_new_cycle_from_the_promoted_model():
    obj, _ = run_to_end(body({"schedule": "0 3 * * *"}), {0: dict(unsafe=38), 1: dict(unsafe=2)})
    assert obj["status"]["nextScheduleTime"] == "2026-11-26T03:00:00Z"
    later = datetime(2026, 11, 26, 3, 0, 5, tzinfo=timezone.utc)
    d = decide(obj, Observed(), later, DEFAULTS)
    assert S(d)["cycle"] == 1 and S(d)["startModel"] == "/a/r1/train-target/model"
    assert any(e[1] == "CycleStarted" for e in d.events)
    d2 = decide({**obj, "status": S(d)}, Observed(), later, DEFAULTS)
    assert [c.name for c in d2.create] == ["demo-c1-r0-evaluate"]
    config = json.loads(next(e["value"] for e in d2.create[0].body["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))
    assert config["target"]["model"] == "/a/r1/train-target/model"
    assert S(d)["history"][0]["promotedModel"] == "/a/r1/train-target/model"


@pytest.mark.parametrize("spec, field", [({"rounds": 0}, "spec.rounds"), ({"target": None}, "spec.target"), ({"bogus": 1}, "spec.bogus")])
def test_an_invalid_spec_degrades_with_the_field_path(spec, field):
    b = body()
    b["spec"].update(spec)
    b["spec"] = {k: v for k, v in b["spec"].items() if v is not None}
    d = decide(b, Observed(), NOW, DEFAULTS)
    assert d.create == []
    degraded = cond(S(d), "Degraded")
    assert degraded["reason"] == "InvalidSpec" and field in degraded["message"]
    assert d.events[0][:2] == ("Warning", "InvalidSpec")


def test_editing_the_spec_retries_a_stage_that_ran_out_of_retries():
    status = S(decide(body({"retries": 0}), Observed(), NOW, DEFAULTS))
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    status = S(decide(body({"retries": 0}, status=status), Observed(children=children), NOW, DEFAULTS))
    assert status["phase"] == "Degraded"
    again = decide(body({"retries": 0}, status=status), Observed(children=children), NOW + timedelta(seconds=60), DEFAULTS)
    assert again.create == []
    fixed = decide(body({"retries": 0, "resources": {"memory": "64Gi"}}, status=status, generation=2), Observed(children=children), NOW + timedelta(seconds=61), DEFAULTS)
    assert [c.name for c in fixed.create] == ["demo-r0-evaluate-retry1"]
    assert fixed.create[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Gi"
    assert cond(S(fixed), "Degraded")["status"] == "False"
    assert any(e[1] == "StageRetrying" for e in fixed.events)


# --- the phases, table by table -------------------------------------------------------


def ctx(now=NOW, generation=1):
    return Context(name="demo", namespace="ns", uid="u-1", generation=generation, now=now, settings=DEFAULTS)


def entry(state, **fields):
    return StageEntry(state=StageState(state), **fields)


@pytest.mark.parametrize("states, edited, expected_states, events, applies", [
    ({"r0/evaluate": "failed"}, True, {"r0/evaluate": "waiting"}, ["StageRetrying"], True),
    ({"r0/evaluate": "failed"}, False, {"r0/evaluate": "failed"}, [], False),  # no edit: stays failed
    # an edit during a retry wait applies to the next attempt, without resetting the failures
    ({"r0/evaluate": "succeeded", "r1/attack": "waiting"}, True, {"r0/evaluate": "succeeded", "r1/attack": "waiting"}, ["SpecApplied"], True),
    ({"r0/evaluate": "succeeded", "r1/attack": "running"}, True, {"r0/evaluate": "succeeded", "r1/attack": "running"}, [], False),
])
def test_retry_after_edit(states, edited, expected_states, events, applies):
    stages = {label: entry(state, failures=3, attempts=3) for label, state in states.items()}
    out, evs, applied = retry_after_edit(stages, edited, ctx())
    assert {label: str(e.state) for label, e in out.items()} == expected_states
    assert [e.reason for e in evs] == events and applied is applies
    for label, state in expected_states.items():
        if states[label] == "failed" and state == "waiting":
            assert out[label].failures == 0 and out[label].retryAt == "2026-11-25T12:00:00Z"  # a fresh budget, due now
        if states[label] == "waiting":
            assert out[label].failures == 3


@pytest.mark.parametrize("child, message, retries, state, failures, reason, event", [
    (complete("c"), RESULTS["attack"](1), 2, "succeeded", 0, "", "StageSucceeded"),
    (complete("c"), "not json", 2, "waiting", 1, "MalformedResult", "StageFailed"),
    (complete("c"), None, 2, "waiting", 1, "MalformedResult: the stage left no result", "StageFailed"),
    (complete("c"), RESULTS["pairs"](1), 2, "waiting", 1, "MalformedResult: the result is for r1/pairs, not r1/attack", "StageFailed"),
    (complete("c"), RESULTS["attack"](2), 2, "waiting", 1, "MalformedResult: the result is for r2/attack, not r1/attack", "StageFailed"),
    (failed("c"), None, 2, "waiting", 1, "BackoffLimitExceeded", "StageFailed"),
    (failed("c"), None, 0, "failed", 1, "BackoffLimitExceeded", "StageFailed"),
    (running("c"), None, 2, "running", 0, "", None),
    (None, None, 2, "running", 0, "", None),  # not listed yet
])
def test_fold_children(child, message, retries, state, failures, reason, event):
    stages = {"r1/attack": entry("running", child="c", kind="Job", attempts=1, startedAt="2026-11-25T11:50:00Z")}
    observed = Observed(children={"c": child} if child else {}, messages={"c": message})
    out, events, progressed, delete = fold_children(stages, observed, make_spec(retries=retries), ctx())
    got = out["r1/attack"]
    assert (str(got.state), got.failures) == (state, failures)
    assert got.reason.startswith(reason)
    assert [e.reason for e in events] == ([event] if event else [])
    assert progressed is (state == "succeeded")  # a failure is not progress
    assert delete == []
    if state == "succeeded":
        assert got.result == parse_stage_result(message)
    if state == "waiting":
        assert got.retryAt == "2026-11-25T12:00:10Z"  # retry_base_seconds after the first failure


BAD_NUMBERS = [
    '{"stage": "attack", "round": 1, "records": "r", "prompts": 2, "responses": 2, "counts": {"safe": 1, "unsafe": 1}, '
    '"asr": {"k": 1, "n": 2, "rate": NaN, "low": 0.1, "high": 0.9}, "judge": {"type": "refusal-match"}}',
    '{"stage": "attack", "round": 1, "records": "r", "prompts": 2, "responses": 2, "counts": {"safe": 1, "unsafe": 1}, '
    '"asr": {"k": 3, "n": 2, "rate": 1.5, "low": 0.1, "high": 0.9}, "judge": {"type": "refusal-match"}}',
    '{"stage": "attack", "round": 1, "records": "r", "prompts": -2, "responses": 2, "counts": {"safe": 1, "unsafe": 1}, '
    '"asr": {"k": 1, "n": 2, "rate": 0.5, "low": 0.0945, "high": 0.9055}, "judge": {"type": "refusal-match"}}',
    '{"stage": "attack", "round": 1, "records": "r", "prompts": 2, "responses": 2, "counts": {"safe": -1, "unsafe": 1}, '
    '"asr": {"k": 1, "n": 2, "rate": 0.5, "low": 0.0945, "high": 0.9055}, "judge": {"type": "refusal-match"}}',
]


@pytest.mark.parametrize("message", BAD_NUMBERS, ids=["nan", "rate-above-1", "negative-count", "negative-verdicts"])
def test_nan_out_of_range_and_negative_results_are_malformed_and_use_a_retry(message):
    stages = {"r1/attack": entry("running", child="c", kind="Job", attempts=1, startedAt=NOW_S)}
    out, events, _, _ = fold_children(stages, Observed(children={"c": complete("c")}, messages={"c": message}), make_spec(retries=2), ctx())
    assert (str(out["r1/attack"].state), out["r1/attack"].failures) == ("waiting", 1)
    assert out["r1/attack"].reason.startswith("MalformedResult")


@pytest.mark.parametrize("exit_code, state", [(2, "failed"), (3, "failed"), (1, "waiting"), (137, "waiting")])
def test_user_errors_fail_at_once_other_failures_are_retried(exit_code, state):
    stages = {"r0/evaluate": entry("running", child="c", kind="Job", attempts=1, startedAt=NOW_S)}
    observed = Observed(children={"c": failed("c")}, exit_codes={"c": exit_code}, pod_reasons={"c": f"Error (exit {exit_code})"})
    out, events, _, _ = fold_children(stages, observed, make_spec(retries=2), ctx())
    assert str(out["r0/evaluate"].state) == state
    if state == "failed":
        assert "a user error that another attempt would repeat" in events[0].message


@pytest.mark.parametrize("reason", ["ImagePullBackOff: Back-off pulling image", "CreateContainerConfigError: secret \"hf\" not found",
                                    "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."])
def test_a_pod_that_cannot_start_is_reported_at_once_and_failed_after_the_startup_timeout(reason):
    spec = make_spec(retries=2, timeouts={"startup": 600})
    stages = {"r0/evaluate": entry("running", child="c", kind="Job", attempts=1, startedAt="2026-11-25T11:55:00Z")}
    observed = Observed(children={"c": running("c")}, stuck={"c": reason})
    out, events, progressed, delete = fold_children(stages, observed, spec, ctx())  # 5 minutes in
    assert str(out["r0/evaluate"].state) == "running" and out["r0/evaluate"].reason == f"Pending: {reason}"
    assert [e.reason for e in events] == ["StagePending"] and delete == []
    again, events, _, _ = fold_children(out, observed, spec, ctx())
    assert events == []  # said once, not every reconcile
    late, events, _, delete = fold_children(out, observed, spec, ctx(now=NOW + timedelta(minutes=6)))  # 11 minutes in
    assert str(late["r0/evaluate"].state) == "waiting" and reason.split(":")[0] in late["r0/evaluate"].reason
    assert delete == [("Job", "c")]  # the stuck child is ended: it may hold a GPU


def test_an_evicted_pod_is_retried_at_once_without_using_a_retry():
    stages = {"r1/train-target": entry("running", child="t", kind="PyTorchJob", attempts=1, startedAt=NOW_S)}
    pytorchjob = {"metadata": {"name": "t"}, "kind": "PyTorchJob", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    observed = Observed(children={"t": pytorchjob}, disrupted={"t"}, pod_reasons={"t": "Evicted: The node was low on resource: memory."})
    out, events, _, _ = fold_children(stages, observed, make_spec(retries=0), ctx())
    assert (str(out["r1/train-target"].state), out["r1/train-target"].failures) == ("waiting", 0)
    assert out["r1/train-target"].retryAt == NOW_S and [e.reason for e in events] == ["StageDisrupted"]
    # A node pool that keeps draining: after MAX_DISRUPTIONS free attempts they count as failures.
    many = {"r1/train-target": entry("running", child="t", kind="PyTorchJob", attempts=7, startedAt=NOW_S)}
    out, _, _, _ = fold_children(many, observed, make_spec(retries=0), ctx())
    assert str(out["r1/train-target"].state) == "failed"


def test_children_no_running_stage_waits_on_are_ended_until_they_are_gone():
    stages = {"r0/evaluate": entry("waiting", child="c", kind="Job", attempts=1, failures=1, retryAt="2026-11-25T13:00:00Z"),
              "r1/attack": entry("running", child="a", kind="Job", attempts=1, startedAt=NOW_S)}
    def child(state, name, cycle=0, **meta):
        return dict(state(name), metadata={"name": name, "labels": {"seas.dev/cycle": str(cycle)}, **meta})

    children = {"c": child(running, "c"), "a": child(running, "a"), "done": child(complete, "done"), "g": child(running, "g", deletionTimestamp=NOW_S),
                "old": child(running, "old", cycle=1)}
    # Not the running stage's, the finished one, one being deleted, or one of another cycle (retention's business).
    assert unreferenced_running(children, stages, 0) == [("Job", "c")]


def test_a_job_whose_deadline_removed_its_pending_pods_still_says_why_they_never_started():
    stages = {"r0/evaluate": entry("running", child="c", kind="Job", attempts=1, startedAt=NOW_S, reason="Pending: ErrImagePull: not found")}
    out, events, _, _ = fold_children(stages, Observed(children={"c": failed("c")}), make_spec(retries=0), ctx())
    assert str(out["r0/evaluate"].state) == "failed" and "(pod: ErrImagePull: not found)" in out["r0/evaluate"].reason


def test_a_child_past_its_deadline_is_failed_and_ended_by_the_operator():
    spec = make_spec(retries=2, activeDeadlineSeconds=3600)
    stages = {"r1/train-target": entry("running", child="t", kind="TrainJob", attempts=1, startedAt="2026-11-25T10:00:00Z")}
    trainjob = {"metadata": {"name": "t"}, "kind": "TrainJob", "status": {}}
    out, _, _, delete = fold_children(stages, Observed(children={"t": trainjob}), spec, ctx())
    assert str(out["r1/train-target"].state) == "waiting" and out["r1/train-target"].reason.startswith("DeadlineExceeded")
    assert delete == [("TrainJob", "t")]


@pytest.mark.parametrize("child, deadline_passed", [
    ({"spec": {"suspend": True}, "status": {}}, False),  # still queued (Kueue): the clock has not started
    ({"spec": {"runPolicy": {"suspend": True}}, "status": {}}, False),  # a queued PyTorchJob
    ({"spec": {"suspend": False}, "status": {"startTime": "2026-11-25T11:30:00Z"}}, False),  # admitted late: 30 min run
    ({"spec": {"suspend": False}, "status": {"startTime": "2026-11-25T10:00:00Z"}}, True),
    ({"spec": {}, "status": {"startTime": "not a time"}}, True),  # unreadable: counted from the operator's own start
])
def test_a_queued_child_starts_its_deadline_when_it_is_admitted(child, deadline_passed):
    spec = make_spec(retries=2, activeDeadlineSeconds=3600)
    stages = {"r0/evaluate": entry("running", child="j", kind="Job", attempts=1, startedAt="2026-11-25T10:00:00Z")}
    job = {"metadata": {"name": "j"}, "kind": "Job", **child}
    out, _, _, delete = fold_children(stages, Observed(children={"j": job}), spec, ctx())
    assert (delete == [("Job", "j")]) is deadline_passed
    assert str(out["r0/evaluate"].state) == ("waiting" if deadline_passed else "running")


@pytest.mark.parametrize("edited, states, done_through_key, applied", [
    (True, {}, K(0, "evaluate"), True),  # round 0 done, round 1's attack next: a boundary
    (True, {"r1/attack": "running"}, K(0, "evaluate"), False),  # a stage is running
    (True, {}, K(1, "pairs"), False),  # mid-round
    (False, {}, K(0, "evaluate"), False),  # nothing edited
    (True, {}, K(1, "evaluate"), True),  # the cycle is over
])
def test_apply_spec_at_boundary(edited, states, done_through_key, applied):
    spec = make_spec(rounds=1)
    edit = make_spec(rounds=1, attack={"samplesPerSeed": 7})
    stages = {label: entry(state) for label, state in states.items()}
    got_spec, got_applied, _, events = apply_spec_at_boundary(spec, edited, edit, stages, done_through(spec, done_through_key), ctx())
    assert got_applied is applied
    assert got_spec is (edit if applied else spec)
    assert [e.reason for e in events] == (["SpecApplied"] if applied else [])


def test_apply_spec_at_boundary_sets_aside_results_the_new_spec_has_no_stage_for():
    spec = make_spec(rounds=2)
    done = done_through(spec, K(2, "evaluate"))
    _, applied, kept, _ = apply_spec_at_boundary(spec, True, make_spec(rounds=1), {}, done, ctx())
    assert applied and max(k.round for k in kept) == 1


@pytest.mark.parametrize("stages, children, created, waits", [
    ({}, {}, ["demo-r0-evaluate"], []),  # the planner's first stage
    ({"r0/evaluate": entry("waiting", attempts=1, failures=1, retryAt="2026-11-25T11:59:00Z")}, {}, ["demo-r0-evaluate-retry1"], []),
    ({"r0/evaluate": entry("waiting", attempts=1, failures=1, retryAt="2026-11-25T12:00:30Z")}, {}, [], [30.0]),
    ({"r0/evaluate": entry("running", child="demo-r0-evaluate", kind="Job", attempts=1, startedAt="2026-11-25T11:00:00Z")}, {}, ["demo-r0-evaluate"], []),  # vanished
    ({"r0/evaluate": entry("running", child="demo-r0-evaluate", kind="Job", attempts=1, startedAt="2026-11-25T12:00:00Z")}, {}, [], []),  # just created
    ({}, {"demo-r0-evaluate": running("demo-r0-evaluate")}, [], []),  # adopted, not created twice
])
def test_launch_due(stages, children, created, waits):
    spec = make_spec(rounds=1)
    launched = launch_due(spec, stages, {}, Observed(children=children), 0, BASE_TARGET, ctx())
    assert [o.name for o in launched.create] == created
    assert launched.retry_wait == waits
    assert launched.stages["r0/evaluate"].state in (StageState.RUNNING, StageState.WAITING)


@pytest.mark.parametrize("states, regression, complete, suspended, expect", [
    ({"r1/attack": "failed"}, None, False, False, {"Degraded": ("True", "StageFailed"), "Progressing": ("False", "StageFailed"), "Ready": ("False", "StageFailed")}),
    ({"r1/attack": "running"}, None, False, False, {"Degraded": ("False", "AsExpected"), "Progressing": ("True", "StageRunning"), "Ready": ("False", "InProgress")}),
    ({}, change(9, 1), True, False, {"SafetyRegressed": ("True", "SignificantRegression"), "Ready": ("True", "Complete")}),
    ({}, change(1, 9), True, False, {"SafetyRegressed": ("False", "NoSignificantRegression"), "Progressing": ("False", "Complete")}),
    ({"r1/attack": "running"}, None, False, True, {"Progressing": ("False", "Suspended")}),
])
def test_compute_conditions(states, regression, complete, suspended, expect):
    stages = {label: entry(state, failures=3, reason="OOMKilled") for label, state in states.items()}
    summaries = [RoundStatus(round=0), RoundStatus(round=1, regression=regression, gate=GateResult(passed=True))] if regression else []
    conditions = compute_conditions([], make_spec(rounds=1), stages, summaries, complete, suspended, "m", K(1, "attack"), ctx())
    assert [str(c.type) for c in conditions] == ["Ready", "Progressing", "Degraded", "SafetyRegressed"]
    got = {str(c.type): (str(c.status), c.reason) for c in conditions}
    for type_, value in expect.items():
        assert got[type_] == value, type_


def test_compute_conditions_keeps_the_transition_time_while_the_status_holds():
    spec, summaries = make_spec(rounds=1), []
    first = compute_conditions([], spec, {}, summaries, False, False, "m", None, ctx())
    later = compute_conditions(first, spec, {}, summaries, False, False, "m", None, ctx(now=NOW + timedelta(hours=1)))
    assert [c.lastTransitionTime for c in later] == [c.lastTransitionTime for c in first]


@pytest.mark.parametrize("now, new_cycle, requeue", [
    (datetime(2026, 11, 25, 12, 30, tzinfo=timezone.utc), False, 14.5 * 3600),
    (datetime(2026, 11, 26, 3, 0, 1, tzinfo=timezone.utc), True, 1.0),
])
def test_schedule_next_cycle(now, new_cycle, requeue):
    spec = make_spec(rounds=1, schedule="0 3 * * *")
    status = EvolutionStatus(cycle=2, promotedModel="promoted", rounds=[RoundStatus(round=0, adversarialASR=Rate.of(1, 2))],
                             stages={"r0/evaluate": entry("succeeded", finishedAt="2026-11-25T12:00:00Z")})
    out, events, wait = schedule_next_cycle(status, spec, ctx(now=now))
    assert wait == pytest.approx(requeue)
    if new_cycle:
        assert (out.cycle, out.startModel, out.stages, out.rounds, out.nextScheduleTime) == (3, "promoted", {}, [], None)
        assert out.history[-1].cycle == 2 and out.history[-1].rounds[0].adversarialASR == 0.5
        assert [e.reason for e in events] == ["CycleStarted"]
    else:
        assert out.cycle == 2 and out.nextScheduleTime == "2026-11-26T03:00:00Z" and events == []


# --- faults and edits (issue 11) -------------------------------------------------------


def config_of(child) -> dict:
    return json.loads(next(e["value"] for e in child.body["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))


def test_fixing_the_model_after_exhaustion_retries_with_the_new_model():
    status = S(decide(body({"retries": 0, "target": {"model": "org/typo"}}), Observed(), NOW, DEFAULTS))
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    status = S(decide(body({"retries": 0, "target": {"model": "org/typo"}}, status=status), Observed(children=children), NOW, DEFAULTS))
    assert status["phase"] == "Degraded" and status["startModel"] == "org/typo"
    fixed = decide(body({"retries": 0, "target": {"model": "org/fixed"}}, status=status, generation=2), Observed(children=children), NOW, DEFAULTS)
    assert [c.name for c in fixed.create] == ["demo-r0-evaluate-retry1"]
    assert config_of(fixed.create[0])["target"]["model"] == "org/fixed" and S(fixed)["startModel"] == "org/fixed"


def test_memory_raised_during_a_retry_wait_applies_to_the_next_attempt():
    status = S(decide(body(), Observed(), NOW, DEFAULTS))
    children = {"demo-r0-evaluate": failed("demo-r0-evaluate")}
    status = S(decide(body(status=status), Observed(children=children, pod_reasons={"demo-r0-evaluate": "OOMKilled (exit 137)"}), NOW, DEFAULTS))
    assert status["stages"]["r0/evaluate"]["state"] == "waiting"
    edited = body({"resources": {"memory": "64Gi"}}, status=status, generation=2)
    d = decide(edited, Observed(children=children), NOW + timedelta(seconds=11), DEFAULTS)
    assert [c.name for c in d.create] == ["demo-r0-evaluate-retry1"]
    assert d.create[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Gi"
    assert S(d)["stages"]["r0/evaluate"]["failures"] == 1  # the budget is not reset: it was not exhausted


def test_the_start_model_stays_the_promoted_one_in_later_cycles():
    obj, _ = run_to_end(body({"schedule": "0 3 * * *"}), {0: dict(unsafe=38), 1: dict(unsafe=2)})
    later = datetime(2026, 11, 26, 3, 0, 5, tzinfo=timezone.utc)
    d = decide({**obj, "spec": {**obj["spec"], "target": {"model": "org/other"}}}, Observed(), later, DEFAULTS)
    assert S(d)["cycle"] == 1 and S(d)["startModel"] == "/a/r1/train-target/model"


def test_decide_never_raises_a_spec_the_builder_cannot_honour_degrades_it():
    d = decide(body({"resources": {"memory": "lots"}}), Observed(), NOW, DEFAULTS)
    degraded = cond(S(d), "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec" and "spec.resources.memory" in degraded["message"]
    assert d.create == [] and [e.reason for e in d.events] == ["InvalidSpec"]


def test_decide_never_raises_on_a_corrupt_status():
    d = decide(body(status={"stages": {"r0/evaluate": {"state": "exploded"}}}), Observed(), NOW, DEFAULTS)
    assert cond(S(d), "Degraded")["reason"] == "ReconcileError"


def test_a_ready_evolution_reconciles_without_writing_anything():
    obj, decision = run_to_end(body(), {0: dict(unsafe=38), 1: dict(unsafe=2)})
    children = {s["child"]: complete(s["child"]) for s in obj["status"]["stages"].values()}
    again = decide(obj, Observed(children=children), NOW + timedelta(hours=1), DEFAULTS)
    assert merge_patch(obj["status"], S(again)) == {} and again.events == [] and again.create == []


def test_a_written_status_holds_no_null_and_reads_back_the_same():
    spec = make_spec(rounds=2)
    status = decide(body(), Observed(), NOW, DEFAULTS).status
    status = status.model_copy(update=dict(stages={k.label: StageEntry(state=StageState.SUCCEEDED, result=v) for k, v in done_through(spec).items()}))
    written = dump_status(status)
    assert "null" not in json.dumps(written)  # a merge patch cannot store a null: it would be re-sent forever
    assert dump_status(parse_status(written)) == written  # what is read back is written the same: no patch
