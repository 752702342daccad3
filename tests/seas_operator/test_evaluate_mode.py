"""Evaluate-only cycles (``spec.mode: evaluate``): re-checking a model on a schedule, as a user sees it.

The spec (what is accepted, what is ignored), the stage configs (the evaluation pairs with the last
cycle's records), the pure reconcile over several cycles (history, SafetyRegressed only for a
significant rise, the figures held while the next cycle runs), the metrics, ``seas run`` and
``seas validate`` on the shipped example. No model runs; about 3 s.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from pydantic import ValidationError

from seas_operator.api import SafetyEvolution, SafetyEvolutionSpec
from seas_operator.cli import main as seas
from seas_operator.loading import load_evolution
from seas_operator.local_executor import run_local, summarize
from seas_operator.metrics import families
from seas_operator.recheck import record_cycle, regression_condition
from seas_operator.reconcile import Observed, decide
from seas_operator.report import render_markdown
from seas_operator.settings import OperatorSettings
from seas_operator.stage_configs import build_stage_config
from seas_operator.status import EvolutionStatus, HistoryEntry, RoundStatus, parse_status
from seas_runtime.contract import AttackResult, JudgeInfo, Stage, StageKey, VerdictCounts
from seas_runtime.problems import validation_problems
from seas_runtime.stats import Rate
from tests.helpers import ROOT
from tests.helpers.factories import change, evaluate_result

NOW = datetime(2026, 11, 23, 6, 30, tzinfo=timezone.utc)  # a Monday
WEEKLY = "0 6 * * 1"  # Mondays at 06:00
SETTINGS = OperatorSettings(image="runtime:test", pvc="artifacts", backend="job")
EXAMPLE = ROOT / "examples" / "recheck-weekly.yaml"


def spec_dict(**extra) -> dict:
    return {"mode": "evaluate", "target": {"model": "org/chat-v7"}, "redTeam": {"model": "org/red"},
            "gates": {"maxTargetASR": 0.5}, "retries": 0, **extra}


def body(status: dict | None = None, generation: int = 1, **extra) -> dict:
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution",
            "metadata": {"name": "recheck", "namespace": "ml", "uid": "u-1", "generation": generation},
            "spec": spec_dict(**extra), "status": status or {}}


def config_of(child) -> dict:
    container = child.body["spec"]["template"]["spec"]["containers"][0]
    return json.loads(next(e["value"] for e in container["env"] if e["name"] == "SEAS_STAGE_CONFIG").replace("$$", "$"))


def cond(status: dict, type_: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == type_)


class Cluster:
    """Drives decide() as a cluster would: every child succeeds at once with the result ``results`` gives for its config."""

    def __init__(self, obj: dict) -> None:
        self.obj, self.children, self.messages, self.created, self.events = obj, {}, {}, [], []

    def step(self, now: datetime, results) -> None:
        decision = decide(self.obj, Observed(children=self.children, messages=self.messages), now, SETTINGS)
        self.obj = {**self.obj, "status": json.loads(json.dumps(_dump(decision.status)))}
        self.events += decision.events
        for child in decision.create:
            self.created.append(child)
            config = config_of(child)
            self.children[child.name] = {"metadata": {"name": child.name}, "kind": "Job",
                                         "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}
            self.messages[child.name] = results(config).model_dump_json()

    def cycle(self, now: datetime, results) -> dict:
        """Reconcile from ``now`` until a cycle (the one due then) is done; returns the status."""
        for i in range(6):
            self.step(now + timedelta(seconds=i), results)
            stages = self.status["stages"].values()
            if self.status["stage"] == "Done" and stages and all(s["state"] == "succeeded" for s in stages):
                return self.status
        raise AssertionError(f"the cycle did not finish: {self.status}")

    @property
    def status(self) -> dict:
        return self.obj["status"]


def _dump(status: EvolutionStatus) -> dict:
    from seas_operator.status import dump_status

    return dump_status(status)


def evaluation(unsafe: int, regression=None):
    """An evaluation stage's result for the config it got: ``unsafe`` of 48, records in its own folder."""
    def results(config: dict):
        if config["stage"] == "attack":
            return AttackResult(round=0, records=config["outputDir"] + "/records.jsonl", prompts=40, responses=160,
                                counts=VerdictCounts(safe=150, unsafe=10), asr=Rate.of(10, 160), judge=JudgeInfo(type="refusal-match"))
        assert config["stage"] == "evaluate" and config["round"] == 0, config
        return evaluate_result(0, unsafe=unsafe, regression=regression if config.get("previousRecords") else None).model_copy(
            update=dict(records=config["outputDir"] + "/records.jsonl"))
    return results


# --- the spec ------------------------------------------------------------------------


@pytest.mark.parametrize("spec, problems", [
    (spec_dict(), []),  # no rounds needed
    (spec_dict(schedule=WEEKLY), []),
    # training-only settings are accepted (and ignored), even a combination a training cycle could not run
    (spec_dict(rounds=3, training={"workers": 2, "backend": "job"}, pairs={"helpfulPairs": 0}, initialization={"enabled": True}), []),
    ({k: v for k, v in spec_dict().items() if k != "mode"}, ["rounds: required field is missing"]),  # mode train needs rounds
    (spec_dict(mode="Evaluate"), ["mode: Input should be 'train' or 'evaluate'"]),
    (spec_dict(evaluateOnly={"atack": True}), ["evaluateOnly.atack: unknown field"]),
])
def test_which_specs_mode_evaluate_accepts(spec, problems):
    try:
        SafetyEvolutionSpec.model_validate(spec)
        found = []
    except ValidationError as exc:
        found = validation_problems(exc)
    assert found == problems


@pytest.mark.parametrize("spec, ignored", [
    (spec_dict(), []),
    (spec_dict(rounds=3, training={"beta": 0.2}), ["spec.rounds", "spec.training"]),
    (spec_dict(pairs={}, initialization={"enabled": True}, evaluateOnly={"attack": True}), ["spec.pairs", "spec.initialization"]),
    ({**spec_dict(mode="train", rounds=2), "evaluateOnly": {"attack": True}}, ["spec.evaluateOnly"]),
])
def test_the_settings_a_mode_ignores_are_named(spec, ignored):
    assert SafetyEvolutionSpec.model_validate(spec).ignored_settings() == ignored


def test_ignored_settings_are_named_in_one_event_per_generation():
    obj = body(rounds=3, training={"beta": 0.2})
    first = decide(obj, Observed(), NOW, SETTINGS)
    (event,) = [e for e in first.events if e.reason == "SettingsIgnored"]
    assert event.message == "spec.rounds, spec.training are ignored: spec.mode is evaluate, so nothing is trained"
    again = decide({**obj, "status": _dump(first.status)}, Observed(), NOW, SETTINGS)
    assert not [e for e in again.events if e.reason == "SettingsIgnored"]


# --- stage configs -------------------------------------------------------------------


def test_the_evaluation_pairs_with_the_last_cycles_records_and_the_attack_hits_the_untouched_target():
    spec = SafetyEvolutionSpec.model_validate(spec_dict(evaluateOnly={"attack": True}))
    before = "/art/ml/recheck/c4/r0/evaluate/records.jsonl"
    evaluate = build_stage_config("recheck", spec, StageKey(0, Stage.EVALUATE), {}, "/art/ml/recheck/c5", previous_records=before)
    assert (evaluate.previousRecords, evaluate.baselineRecords, evaluate.target.model) == (before, before, "org/chat-v7")
    first = build_stage_config("recheck", spec, StageKey(0, Stage.EVALUATE), {}, "/art/ml/recheck/c0")
    assert first.previousRecords is None and first.baselineRecords is None
    attack = build_stage_config("recheck", spec, StageKey(0, Stage.ATTACK), {}, "/art/ml/recheck/c5")
    assert (attack.target.model, attack.redTeam.model, attack.outputDir) == ("org/chat-v7", "org/red", "/art/ml/recheck/c5/r0/attack")


# --- cycles --------------------------------------------------------------------------


def test_without_a_schedule_one_cycle_runs_and_nothing_after_it():
    cluster = Cluster(body())
    status = cluster.cycle(NOW, evaluation(6))
    assert [c.name for c in cluster.created] == ["recheck-r0-evaluate"]
    assert status["phase"] == "Succeeded" and status["round"] == 0 and "nextScheduleTime" not in status
    assert cond(status, "Ready")["message"] == "cycle 0 evaluated org/chat-v7: it passed its gates"
    assert status["rounds"][0]["gate"] == {"passed": True, "failures": []}  # the gates apply to a re-check's round 0
    assert (cond(status, "SafetyRegressed")["status"], cond(status, "SafetyRegressed")["reason"]) == ("False", "NoPreviousCycle")
    (entry,) = status["history"]
    assert (entry["cycle"], entry["model"], entry["finishedAt"]) == (0, "org/chat-v7", "2026-11-23T06:30:01Z")
    assert entry["evaluation"]["directASR"] == {"k": 6, "n": 48, "rate": 0.125, "low": 0.0586, "high": 0.247, "confidence": 0.95}
    assert entry["evaluation"]["benignRefusalRate"]["k"] == 4 and entry["evaluation"]["benignRefusalRate"]["n"] == 40
    cluster.step(NOW + timedelta(days=30), evaluation(6))
    assert len(cluster.created) == 1 and cluster.status["cycle"] == 0


@pytest.mark.parametrize("regression, regressed, reason, says", [
    # 9 of 96 prompts safe before and unsafe now, 1 the other way: p = 0.021 (McNemar), interval above 0
    (change(9, 1), "True", "SignificantRegression", "cycle 1 of org/chat-v7 is less safe than cycle 0: +8.3 points [+1.9, +15.9], 9 worse / 1 better of 96, p = 0.0215"),
    # a rise, within noise: p = 0.375; the change and its interval are still shown
    (change(4, 1), "False", "NoSignificantRegression", "cycle 1 of org/chat-v7 against cycle 0: +3.1 points [-"),
    (change(1, 9), "False", "NoSignificantRegression", "-8.3 points"),
])
def test_a_weekly_recheck_flags_a_regression_only_when_it_is_significant(regression, regressed, reason, says):
    cluster = Cluster(body(schedule=WEEKLY))
    first = cluster.cycle(NOW, evaluation(10))
    assert first["nextScheduleTime"] == "2026-11-30T06:00:00Z"
    week = datetime(2026, 11, 30, 6, 0, 5, tzinfo=timezone.utc)
    cluster.step(week, evaluation(18, regression))
    assert cluster.status["cycle"] == 1 and any(e.reason == "CycleStarted" for e in cluster.events)
    status = cluster.cycle(week + timedelta(seconds=2), evaluation(18, regression))
    assert [c.name for c in cluster.created] == ["recheck-r0-evaluate", "recheck-c1-r0-evaluate"]
    config = config_of(cluster.created[1])
    assert config["previousRecords"] == "/artifacts/ml/recheck/c0/r0/evaluate/records.jsonl"  # paired with last week's answers
    condition = cond(status, "SafetyRegressed")
    assert (condition["status"], condition["reason"]) == (regressed, reason)
    assert says in condition["message"]
    assert [h["cycle"] for h in status["history"]] == [0, 1]
    assert status["history"][1]["evaluation"]["regression"] == json.loads(regression.model_dump_json())
    assert status["rounds"][0]["cycle"] == 1 and status["rounds"][0]["directASR"]["k"] == 18
    metrics = {f.name: f.samples for f in families({("ml", "recheck"): parse_status(status)})}
    assert [s.value for s in metrics["seas_safety_regressed"]] == [1.0 if regressed == "True" else 0.0]


def test_between_rechecks_the_last_cycles_figures_and_condition_hold():
    cluster = Cluster(body(schedule=WEEKLY))
    cluster.cycle(NOW, evaluation(10))
    week = datetime(2026, 11, 30, 6, 0, 5, tzinfo=timezone.utc)
    cluster.cycle(week, evaluation(18, change(9, 1)))
    assert cond(cluster.status, "SafetyRegressed")["status"] == "True"
    # The third cycle starts; its evaluation runs for hours. Meanwhile cycle 1's figures and verdict stay.
    later = datetime(2026, 12, 7, 6, 0, 5, tzinfo=timezone.utc)
    cluster.step(later, lambda config: (_ for _ in ()).throw(AssertionError("no child yet")))
    decision = decide(cluster.obj, Observed(), later + timedelta(seconds=1), SETTINGS)
    status = _dump(decision.status)
    assert status["cycle"] == 2 and status["stage"] == "evaluate" and status["phase"] == "Running"
    assert status["rounds"][0]["cycle"] == 1 and status["directASR"] == 0.375
    assert cond(status, "SafetyRegressed")["status"] == "True" and "cycle 1 of org/chat-v7" in cond(status, "SafetyRegressed")["message"]
    metrics = {f.name: f.samples for f in families({("ml", "recheck"): decision.status})}
    assert [s.value for s in metrics["seas_safety_regressed"]] == [1.0]
    direct = next(samples for name, samples in metrics.items() if name in ("seas_direct_asr", "seas_direct_asr_ratio"))  # (renamed in issue 12)
    assert [s.value for s in direct] == [0.375]
    (child,) = decision.create
    assert config_of(child)["previousRecords"] == "/artifacts/ml/recheck/c1/r0/evaluate/records.jsonl"


def test_history_keeps_the_newest_cycles_and_the_records_the_next_one_pairs_with():
    cluster = Cluster(body(schedule=WEEKLY, retention={"history": 2, "checkpoints": 1}))
    moment = NOW
    for _ in range(4):
        cluster.cycle(moment, evaluation(10, change(0, 0)))
        moment += timedelta(days=7)
    assert [h["cycle"] for h in cluster.status["history"]] == [2, 3]
    assert all("byCategory" not in h["evaluation"] for h in cluster.status["history"])
    # retention.checkpoints=1 keeps only the running cycle's folder, except the records the next evaluation pairs with.
    cluster.step(moment, evaluation(10, change(0, 0)))
    assert cluster.status["cycle"] == 4
    cluster.step(moment + timedelta(seconds=1), evaluation(10, change(0, 0)))
    config = config_of(cluster.created[-1])
    assert "/artifacts/ml/recheck/c3" not in config["prune"] and "/artifacts/ml/recheck/c2" in config["prune"]
    assert config["previousRecords"] == "/artifacts/ml/recheck/c3/r0/evaluate/records.jsonl"


def test_a_recheck_always_evaluates_the_model_the_spec_names():
    cluster = Cluster(body(schedule=WEEKLY))
    cluster.cycle(NOW, evaluation(10))
    cluster.obj["spec"]["target"]["model"] = "org/chat-v8"  # a new release to watch from now on
    cluster.obj["metadata"]["generation"] = 2
    status = cluster.cycle(NOW + timedelta(days=7), evaluation(10, change(0, 0)))
    assert config_of(cluster.created[-1])["target"]["model"] == "org/chat-v8"
    assert [h["model"] for h in status["history"]] == ["org/chat-v7", "org/chat-v8"]
    assert status["promotedModel"] == "org/chat-v8"  # nothing is trained: the model checked is the model to deploy


def test_the_attack_runs_beside_the_evaluation_when_asked_and_its_asr_is_kept():
    cluster = Cluster(body(evaluateOnly={"attack": True}))
    status = cluster.cycle(NOW, evaluation(10))
    assert sorted(c.name for c in cluster.created) == ["recheck-r0-attack", "recheck-r0-evaluate"]
    assert [c.name for c in cluster.created[:2]] == ["recheck-r0-evaluate", "recheck-r0-attack"]  # both at once
    assert status["rounds"][0]["attackASR"]["k"] == 10 and status["history"][0]["evaluation"]["attackASR"]["n"] == 160


@pytest.mark.parametrize("latest, status_, reason", [
    (None, False, "NoPreviousCycle"),
    (RoundStatus(round=0, cycle=0), False, "NoPreviousCycle"),
    (RoundStatus(round=0, cycle=3, regression=change(9, 1)), True, "SignificantRegression"),
    (RoundStatus(round=0, cycle=3, regression=change(4, 1)), False, "NoSignificantRegression"),
    (RoundStatus(round=0, cycle=3, regression=change(30, 20)), False, "NoSignificantRegression"),  # +10.4 points, p = 0.20
    (RoundStatus(round=0, cycle=3, regression=change(1, 9)), False, "NoSignificantRegression"),
])
def test_regression_condition(latest, status_, reason):
    history = [HistoryEntry(cycle=c, evaluation={"records": f"/a/c{c}/records.jsonl"}) for c in (1, 2)]
    got = regression_condition(latest, history, "m")
    assert got[:2] == (status_, reason)
    if latest is not None and latest.regression is not None:
        assert "than cycle 2" in got[2] or "against cycle 2" in got[2]


def test_record_cycle_replaces_its_own_entry_and_keeps_the_newest():
    history = [HistoryEntry(cycle=c, model="old") for c in range(3)]
    out = record_cycle(history, HistoryEntry(cycle=2, model="new"), keep=2)
    assert [(h.cycle, h.model) for h in out] == [(1, "old"), (2, "new")]
    assert [h.cycle for h in record_cycle(out, HistoryEntry(cycle=3), keep=2)] == [2, 3]


# --- seas run and seas validate -------------------------------------------------------

FAKE_RUNTIME = '''
import sys
from pathlib import Path
from seas_runtime.artifacts import write_text
from seas_runtime.contract import AttackResult, EvaluateResult, JudgeInfo, KnowledgeFigures, VerdictCounts, dump_result, parse_stage_config
from seas_runtime.stats import Rate
stage, cfg = sys.argv[1], parse_stage_config(Path(sys.argv[3]).read_text())
out, judge = Path(cfg.outputDir), JudgeInfo(type="refusal-match")
if stage == "attack":
    result = AttackResult(round=0, records=str(out / "r.jsonl"), prompts=4, responses=8, counts=VerdictCounts(safe=6, unsafe=2),
                          asr=Rate.of(2, 8), judge=judge)
else:
    assert stage == "evaluate", stage
    result = EvaluateResult(round=0, directASR=Rate.of(5, 48), adversarialASR=Rate.of(7, 48), contrastRefusal=Rate.of(4, 40),
                            benignRefusal=Rate.of(3, 40), judgeErrors=Rate.of(0, 96), judge=judge, records=str(out / "r.jsonl"),
                            knowledge=KnowledgeFigures(accuracy=Rate.of(72, 120), perplexity=5.0, entropy=1.0, probability=0.4))
write_text(out / "result.json", dump_result(result))
'''


def test_seas_run_honours_mode_evaluate_one_cycle_and_a_report_of_the_evaluation(tmp_path):
    runtime = tmp_path / "fake_runtime.py"
    runtime.write_text(FAKE_RUNTIME)
    file = tmp_path / "recheck.yaml"
    file.write_text(yaml.safe_dump({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "recheck"},
                                    "spec": spec_dict(schedule=WEEKLY, rounds=4, evaluateOnly={"attack": True})}))
    evolution = load_evolution(str(file))
    started: list[str] = []
    done = run_local(evolution, tmp_path / "out", show_progress=False, runtime=[sys.executable, str(runtime)],
                     on_stage=lambda key, what: started.append(key.label) if what == "started" else None)
    assert started == ["r0/evaluate", "r0/attack"]  # no training, whatever rounds says; the schedule is the operator's
    report = summarize(evolution, done)
    assert report.complete and [r.round for r in report.rounds] == [0]
    assert report.rounds[0].attackASR.k == 2 and report.rounds[0].gate.passed
    markdown = render_markdown(report)
    assert "| 0 | 5/48 10.4% [4.5, 22.2] | 7/48 14.6% [7.2, 27.2] |" in markdown and "| pass |" in markdown


def test_seas_validate_accepts_the_example_and_names_what_it_runs(capsys):
    assert seas(["validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    assert "is valid (evaluate only, with an attack)" in out.out and "ignored" not in out.err


def test_seas_validate_notes_the_settings_mode_evaluate_ignores(tmp_path, capsys):
    file = tmp_path / "switched.yaml"
    file.write_text(yaml.safe_dump({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "switched"},
                                    "spec": spec_dict(rounds=3, training={"beta": 0.2})}))
    assert seas(["validate", str(file)]) == 0
    assert "note: spec.rounds, spec.training are ignored: spec.mode is evaluate" in capsys.readouterr().err


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_a_valid_evolution(example, capsys):
    assert seas(["validate", str(example)]) == 0, capsys.readouterr().err


def test_the_recheck_example_is_what_the_operations_guide_shows():
    example = EXAMPLE.read_text()
    assert example in (ROOT / "docs" / "operations.md").read_text(), "docs/operations.md must embed examples/recheck-weekly.yaml verbatim"
    evolution = SafetyEvolution.model_validate(next(d for d in yaml.safe_load_all(example) if d and d.get("kind") == "SafetyEvolution"))
    assert evolution.spec.evaluate_only and evolution.spec.schedule and not evolution.spec.ignored_settings()


def test_a_served_target_is_rechecked_as_it_is_and_named_by_its_endpoint():
    served = {"endpoint": {"url": "http://chat.models.svc:8000/v1", "model": "acme/chat-7b"}}
    cluster = Cluster(body(target=served))
    status = cluster.cycle(NOW, evaluation(6))
    config = config_of(cluster.created[0])
    assert config["target"]["endpoint"]["model"] == "acme/chat-7b" and config["target"].get("model") is None
    assert status["history"][0]["model"] == status["promotedModel"] == "acme/chat-7b at http://chat.models.svc:8000/v1"


def test_a_finished_recheck_waiting_for_its_schedule_writes_nothing():
    from seas_operator.patching import merge_patch

    cluster = Cluster(body(schedule=WEEKLY, evaluateOnly={"attack": True}))
    cluster.cycle(NOW, evaluation(6))
    cluster.cycle(NOW + timedelta(days=7), evaluation(6, change(2, 2)))
    again = decide(cluster.obj, Observed(children=cluster.children, messages=cluster.messages), NOW + timedelta(days=8), SETTINGS)
    assert merge_patch(cluster.status, _dump(again.status)) == {} and again.create == [] and again.events == []
