"""Retention (spec.retention) and the bounded status: the pure functions by tables, then through decide()."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from functools import partial

import pytest

from seas_operator.api import RetentionSpec
from seas_operator.planner import is_complete, next_stages, redteam_model, rounds_in_use, stage_graph
from seas_operator.reconcile import Observed, decide
from seas_operator.report import Report, render_markdown
from seas_operator.retention import PRUNE_LOOKBACK, children_to_prune, cycle_of, cycle_roots_to_prune, holds, pruned_message
from seas_operator.rounds import round_summaries, trim_breakdowns
from seas_operator.status import EvolutionStatus, HistoryEntry, HistoryRound, RoundStatus, StageEntry, StageState, compact_stages, dump_status, parse_status
from seas_runtime.contract import EvaluateResult, GenerationFigures, JudgeInfo, KnowledgeFigures, Stage, StageKey, dump_result, parse_stage_config
from seas_runtime.layout import cluster_root
from seas_runtime.stats import Rate
from tests.helpers.factories import change, done_through, evaluate_result, make_spec, result_for
from tests.seas_operator.test_reconcile import DEFAULTS, NOW, S, body, complete, config_of

ROOT = partial(cluster_root, "/artifacts", "ns", "demo")  # the cycle folders of evolution ns/demo


def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


def child(name: str, cycle, round_=0, stage="evaluate", kind="Job", deleting=False) -> dict:
    labels = {"seas.dev/evolution": "demo", "seas.dev/round": str(round_), "seas.dev/stage": stage}
    if cycle is not None:
        labels["seas.dev/cycle"] = str(cycle)
    meta = {"name": name, "labels": labels, **({"deletionTimestamp": "2026-11-25T11:00:00Z"} if deleting else {})}
    return {"metadata": meta, **({"kind": kind} if kind else {})}


# --- the pure functions ------------------------------------------------------------------


@pytest.mark.parametrize("folder, path, inside", [
    ("/a/ns/demo/c1", "/a/ns/demo/c1/r2/train-target/model", True),
    ("/a/ns/demo/c1", "/a/ns/demo/c1", True),
    ("/a/ns/demo/c1/", "/a/ns/demo/c1", True),
    ("/a/ns/demo/c1", "/a/ns/demo/c10/r1/train-target/model", False),  # a prefix of the name is not a parent
    ("/a/ns/demo/c1", "/a/ns/demo/c2/../c1/r1/x", True),
    ("/a/ns/demo/c1", "org/target", False),  # a hub id
])
def test_holds(folder, path, inside):
    assert holds(folder, path) is inside


@pytest.mark.parametrize("path, cycle", [
    ("/artifacts/ns/demo/c3/r1/train-target/model", 3),
    ("/artifacts/ns/demo/c12", 12),
    ("/artifacts/ns/demo/cx/r1", None),
    ("/artifacts/ns/demo2/c3/r1", None),  # another evolution
    ("/artifacts/.cache/smollm2", None),
    ("org/target", None),
])
def test_cycle_of(path, cycle):
    assert cycle_of(path, ROOT) == cycle


PROMOTED_C1 = f"{ROOT(1)}/r1/train-target/model"
OLD_AND_NEW = {
    "demo-r0-evaluate": child("demo-r0-evaluate", 0),
    "demo-r1-train-target": child("demo-r1-train-target", 0, 1, "train-target", kind="PyTorchJob"),
    "demo-c1-r0-evaluate": child("demo-c1-r0-evaluate", 1),
    "demo-c1-r1-train-target": child("demo-c1-r1-train-target", 1, 1, "train-target"),
    "demo-c2-r0-evaluate": child("demo-c2-r0-evaluate", 2),
    "demo-c3-r0-evaluate": child("demo-c3-r0-evaluate", 3),
}


@pytest.mark.parametrize("children, cycle, keep, protected, pruned", [
    (OLD_AND_NEW, 3, 2, [], ["demo-c1-r0-evaluate", "demo-c1-r1-train-target", "demo-r0-evaluate", "demo-r1-train-target"]),
    (OLD_AND_NEW, 3, 1, [], ["demo-c1-r0-evaluate", "demo-c1-r1-train-target", "demo-c2-r0-evaluate", "demo-r0-evaluate", "demo-r1-train-target"]),
    (OLD_AND_NEW, 3, 4, [], []),
    (OLD_AND_NEW, 0, 1, [], []),  # the current cycle always stays
    # the child that trained the promoted model keeps its logs; its cycle's other children go
    (OLD_AND_NEW, 3, 2, [PROMOTED_C1], ["demo-c1-r0-evaluate", "demo-r0-evaluate", "demo-r1-train-target"]),
    ({"x": child("x", None)}, 5, 1, [], []),  # no cycle label: not ours to judge
    ({"x": child("x", 0, kind=None)}, 5, 1, [], []),  # no kind: cannot be deleted by kind
    ({"x": child("x", 0, deleting=True)}, 5, 1, [], []),  # already going: no second delete, no second Event
    ({"x": child("x", 0, stage="bogus")}, 5, 1, [], []),  # unreadable labels: left alone
])
def test_children_to_prune(children, cycle, keep, protected, pruned):
    out = children_to_prune(children, cycle, keep, ROOT, protected)
    assert [name for _, name in out] == pruned
    assert all(kind == children[name]["kind"] for kind, name in out)


def test_pruned_message_names_the_count_and_cycles():
    pruned = children_to_prune(OLD_AND_NEW, 3, 2, ROOT, [PROMOTED_C1])
    assert pruned_message(OLD_AND_NEW, pruned, 2) == "deleted 3 children of cycles 0, 1 (spec.retention.children=2)"
    assert pruned_message(OLD_AND_NEW, pruned[:1], 2) == "deleted 1 children of cycle 1 (spec.retention.children=2)"


@pytest.mark.parametrize("cycle, keep, protected, released, pruned", [
    (0, 2, [], [], []),
    (1, 2, [], [], []),
    (2, 2, [], [], [0]),
    (5, 2, [], [], [0, 1, 2, 3]),
    (5, 1, [], [], [0, 1, 2, 3, 4]),
    (5, 2, [PROMOTED_C1], [], [0, 2, 3]),  # the promoted model's cycle stays however old
    (5, 2, [PROMOTED_C1, f"{ROOT(3)}/r2/train-target/model"], [], [0, 2]),  # so does the start model's
    (5, 2, ["org/target"], [], [0, 1, 2, 3]),  # a hub model protects no folder
    (60, 2, [], [], list(range(58 - PRUNE_LOOKBACK + 1, 59))),  # the recently expired cycles only
    # a model promoted long ago (cycle 3) that nothing protects any more: its folder is due now
    (60, 2, [], [f"{ROOT(3)}/r1/train-target/model", "org/target", f"{ROOT(59)}/r1/train-target/model"], [3, *range(27, 59)]),
    (60, 2, [f"{ROOT(3)}/r1/train-target/model"], [f"{ROOT(3)}/r1/train-target/model"], list(range(27, 59))),  # still protected
])
def test_cycle_roots_to_prune(cycle, keep, protected, released, pruned):
    assert cycle_roots_to_prune(cycle, keep, ROOT, protected, released) == [ROOT(c) for c in pruned]


def test_retention_defaults_and_bounds():
    assert (RetentionSpec().children, RetentionSpec().checkpoints) == (2, 2)
    assert make_spec().retention == RetentionSpec()
    with pytest.raises(ValueError):
        RetentionSpec(children=0)
    with pytest.raises(ValueError):
        RetentionSpec(checkpoints=0)


# --- compaction ----------------------------------------------------------------------------


@pytest.mark.parametrize("rounds, train_redteam, last, in_use", [
    (5, True, None, {0, 5}),  # complete: the baseline and the last round
    (5, True, K(3, "evaluate"), {0, 3, 4, 5}),  # round 4 next: it reads round 3's models and records
    (5, True, K(3, "pairs"), {0, 2, 3, 4, 5}),  # round 3 runs: it reads round 2's
    (5, False, K(3, "evaluate"), {0, 3, 4, 5}),  # the red team never trains: round 0 (its start) is kept anyway
    (5, True, K(0, "evaluate"), {0, 1, 2, 3, 4, 5}),
])
def test_rounds_in_use(rounds, train_redteam, last, in_use):
    spec = make_spec(rounds=rounds, train_redteam=train_redteam)
    assert rounds_in_use(spec, done_through(spec, last)) == in_use


def test_the_latest_red_team_training_stays_in_use_after_the_red_team_stops_training():
    spec = make_spec(rounds=6, train_redteam=False)
    done = {**done_through(spec, K(4, "evaluate")), K(2, "train-redteam"): result_for(K(2, "train-redteam"))}  # trained until round 2
    assert 2 in rounds_in_use(spec, done)


def test_a_compacted_result_the_planner_needs_is_an_error_not_a_guess():
    spec = make_spec(rounds=3)
    done = {**done_through(spec, K(2, "evaluate")), K(2, "train-redteam"): None}
    with pytest.raises(KeyError, match="compacted"):
        redteam_model(spec, done, 2)  # not the round-1 red team


def succeeded(done) -> dict[str, StageEntry]:
    return {key.label: StageEntry(state=StageState.SUCCEEDED, child=f"demo-r{key.round}-{key.stage}", kind="Job", attempts=1,
                                  startedAt="2026-11-25T11:00:00Z", finishedAt="2026-11-25T11:30:00Z", result=result) for key, result in done.items()}


def test_compact_stages_drops_results_only_outside_the_rounds_in_use():
    spec = make_spec(rounds=4)
    stages = succeeded(done_through(spec, K(3, "train-target")))
    stages["r3/train-redteam"] = StageEntry(state=StageState.RUNNING, child="demo-r3-train-redteam", kind="Job", attempts=1)
    out = compact_stages(stages, {0, 2, 3})
    assert {label for label, e in out.items() if e.result is None} == {f"r1/{s}" for s in ("attack", "pairs", "train-target", "train-redteam", "evaluate")} | {"r3/train-redteam"}
    assert out["r1/pairs"].model_dump(exclude={"result"}) == stages["r1/pairs"].model_dump(exclude={"result"})  # state, child, attempts, times stay
    status = EvolutionStatus(stages=out)
    assert set(status.done()) == {K(r, s) for r in (1, 2) for s in ("attack", "pairs", "train-target", "train-redteam", "evaluate")} | {
        K(0, "evaluate"), K(3, "attack"), K(3, "pairs"), K(3, "train-target")}  # compacted stages are still done
    assert next_stages(spec, status.done(), {K(3, "train-redteam")}) == []
    assert parse_status(dump_status(status)) == status  # no result key at all: the merge patch removes it


def test_round_summaries_carry_compacted_rounds_over_and_regate_them():
    spec = make_spec(rounds=3, gates={"maxTargetASR": 0.3})
    done = done_through(spec)
    full = round_summaries(spec, done)
    compacted = {key: (None if key.round in (1, 2) else result) for key, result in done.items()}
    assert round_summaries(spec, compacted, full) == full
    assert [s.round for s in round_summaries(spec, compacted)] == [0, 3]  # nothing to carry over: those figures are gone
    stricter = make_spec(rounds=3, gates={"maxTargetASR": 0.1})
    assert [s.gate.passed for s in round_summaries(stricter, compacted, full)[1:]] == [False, False, False]


def test_trim_breakdowns_keeps_them_for_round_0_and_the_latest_rounds():
    breakdown = {"fraud": Rate.of(1, 4)}
    summaries = [RoundStatus(round=r, byCategory=breakdown, byStyle=breakdown, adversarialASR=Rate.of(r, 10)) for r in range(5)]
    out = trim_breakdowns(summaries)
    assert [bool(s.byCategory) for s in out] == [True, False, False, True, True]
    assert [bool(s.byStyle) for s in out] == [True, False, False, True, True]
    assert [s.adversarialASR for s in out] == [s.adversarialASR for s in summaries]


# --- through decide() --------------------------------------------------------------------------


def result_json(obj) -> str:
    """The result a created child reports: its config's stage, trained models inside its own output folder."""
    config = parse_stage_config(json.dumps(config_of(obj)))
    result = result_for(config.key)
    if config.key.stage in (Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM):
        result = result.model_copy(update={"model": f"{config.outputDir}/model"})
    return result.model_dump_json()


def drive(obj: dict, evaluations: dict[int, dict], now: datetime, children: dict, messages: dict, limit: int = 40):
    """Reconcile like a cluster would until the cycle is Ready: each created child succeeds, each deleted one vanishes.

    Returns the object and every decision made."""
    decisions = []
    for _ in range(limit):
        d = decide(obj, Observed(children=children, messages=messages), now, DEFAULTS)
        decisions.append(d)
        obj = {**obj, "status": S(d)}
        for kind, name in d.delete:
            assert children.pop(name)["kind"] == kind
        for created in d.create:
            children[created.name] = {**complete(created.name), "metadata": created.body["metadata"], "kind": created.kind}
            config = config_of(created)
            if config["stage"] == "evaluate":
                messages[created.name] = evaluate_result(config["round"], **evaluations.get(config["round"], {})).model_dump_json()
            else:
                messages[created.name] = result_json(created)
        if d.status.phase == "Succeeded" and not d.create:
            return obj, decisions
        now += timedelta(seconds=1)
    raise AssertionError("did not finish")


def test_scheduled_cycles_prune_old_children_and_folders_but_never_the_promoted_model():
    spec = {"schedule": "0 3 * * *", "retention": {"children": 1, "checkpoints": 1}}
    children, messages = {}, {}
    obj, _ = drive(body(spec), {0: dict(unsafe=38), 1: dict(unsafe=2)}, NOW, children, messages)  # cycle 0 promotes its round-1 target
    promoted = obj["status"]["promotedModel"]
    assert promoted == f"{ROOT(0)}/r1/train-target/model"

    day = datetime(2026, 11, 26, 3, 0, 5, tzinfo=timezone.utc)
    obj = {**obj, "status": S(decide(obj, Observed(children=children, messages=messages), day, DEFAULTS))}  # cycle 1 begins
    obj, decisions = drive(obj, {0: dict(unsafe=38), 1: dict(unsafe=30)}, day, children, messages)  # and promotes nothing
    first = decisions[0]
    assert sorted(name for _, name in first.delete) == ["demo-r0-evaluate", "demo-r1-attack", "demo-r1-evaluate", "demo-r1-pairs", "demo-r1-train-redteam"]
    assert [e.message for e in first.events if e.reason == "Pruned"] == ["deleted 5 children of cycle 0 (spec.retention.children=1)"]
    assert config_of(first.create[0])["prune"] == []  # cycle 0's folder holds the promoted model
    assert "demo-r1-train-target" in children  # the run that trained it stays
    assert obj["status"]["promotedModel"] == promoted

    obj = {**obj, "status": S(decide(obj, Observed(children=children, messages=messages), day + timedelta(days=1), DEFAULTS))}
    obj, decisions = drive(obj, {}, day + timedelta(days=1), children, messages)  # cycle 2
    first = decisions[0]
    assert [e.message for e in first.events if e.reason == "Pruned"] == ["deleted 6 children of cycle 1 (spec.retention.children=1)"]
    assert config_of(first.create[0])["prune"] == [ROOT(1)]  # cycle 1 expired; cycle 0 still holds the promoted model
    assert "; it first deletes the artifacts of 1 expired cycle" in next(e.message for e in first.events if e.reason == "StageStarted")
    assert all(config_of(c)["prune"] == [] for d in decisions[1:] for c in d.create)  # only the cycle's first stage prunes
    assert sorted(c["metadata"]["labels"]["seas.dev/cycle"] for c in children.values()).count("1") == 0
    assert all(not d.delete and not any(e.reason == "Pruned" for e in d.events) for d in decisions[1:])  # once


@pytest.mark.parametrize("retention, deleted_cycles, prune", [
    ({}, [0, 1], [0]),  # children and folders of cycles 2 and 3 stay; cycle 1 holds the start (= promoted) model
    ({"children": 1, "checkpoints": 1}, [0, 1, 2], [0, 2]),
    ({"children": 4, "checkpoints": 4}, [], []),
])
def test_a_new_cycle_prunes_old_children_and_hands_old_folders_to_its_first_stage(retention, deleted_cycles, prune):
    status = EvolutionStatus(cycle=3, startModel=PROMOTED_C1, promotedModel=PROMOTED_C1,
                             history=[HistoryEntry(cycle=c, promotedModel=PROMOTED_C1) for c in (1, 2)])
    observed = {name: c for name, c in OLD_AND_NEW.items() if name != "demo-c3-r0-evaluate"}  # the cycle has not begun
    d = decide(body({"retention": retention}, status=dump_status(status)), Observed(children=observed), NOW, DEFAULTS)
    deleted = {name for _, name in d.delete}
    assert deleted == {n for n, c in OLD_AND_NEW.items() if int(c["metadata"]["labels"]["seas.dev/cycle"]) in deleted_cycles} - {"demo-c1-r1-train-target"}
    assert any(e.reason == "Pruned" for e in d.events) is bool(deleted)
    assert [c.name for c in d.create] == ["demo-c3-r0-evaluate"]
    assert config_of(d.create[0])["prune"] == [ROOT(c) for c in prune]


# --- the status of a long cycle -------------------------------------------------------------------------


def test_a_100_round_cycle_completes_with_a_bounded_status_and_every_rounds_figures():
    obj = body({"rounds": 100, "gates": {"maxTargetASR": 0.7}})  # every round passes: 24/48 unsafe, upper bound 0.64
    children, messages = {}, {}
    largest = 0
    now = NOW
    for _ in range(500):
        d = decide(obj, Observed(children=children, messages=messages), now, DEFAULTS)
        status = S(d)
        largest = max(largest, len(json.dumps(status)))
        obj = {**obj, "status": status}
        for created in d.create:
            children[created.name] = {**complete(created.name), "metadata": created.body["metadata"], "kind": created.kind}
            messages[created.name] = result_json(created) if config_of(created)["stage"] != "evaluate" else \
                evaluate_result(config_of(created)["round"]).model_dump_json()
        if status["phase"] == "Succeeded" and not d.create:
            break
        now += timedelta(seconds=1)
    final = parse_status(obj["status"])
    spec = make_spec(rounds=100)
    assert is_complete(spec, final.done()) and len(final.stages) == len(stage_graph(spec))
    assert largest < 256 * 1024, f"status grew to {largest} bytes"
    assert {StageKey.from_label(label).round for label, e in final.stages.items() if e.result is not None} == {0, 100}
    assert [r.round for r in final.rounds] == list(range(101))
    assert all(r.directASR and r.adversarialASR and r.qaAccuracy and r.judge for r in final.rounds)
    assert all(r.gate and r.gate.passed and r.targetModel == f"{ROOT(0)}/r{r.round}/train-target/model" for r in final.rounds[1:])
    assert final.promotedModel == f"{ROOT(0)}/r100/train-target/model"
    report = render_markdown(Report(evolution="demo", complete=True, promotedModel=final.promotedModel, rounds=final.rounds))
    assert all(f"\n| {r} | 24/48 50.0%" in report for r in range(101))  # every round's row, from its carried-over figures


def heavy_evaluation(r: int) -> EvaluateResult:
    """An evaluation near the 4 KiB result limit: 8 categories, 5 styles, chat-mode knowledge, two knowledge contexts."""
    knowledge = KnowledgeFigures(accuracy=Rate.of(72, 120), accuracyNorm=Rate.of(70, 120), perplexity=5.123, entropy=1.234, probability=0.456,
                                 generation=GenerationFigures(accuracy=Rate.of(60, 120), perplexity=3.21, entropy=0.98, topProbability=0.77))
    return EvaluateResult(
        round=r, seconds=123.4, directASR=Rate.of(10, 64), adversarialASR=Rate.of(20, 104), sampledASR=Rate.of(70, 416),
        contrastRefusal=Rate.of(3, 40), benignRefusal=Rate.of(5, 64), redteamASR=Rate.of(30, 80) if r else None, judgeErrors=Rate.of(1, 168),
        byCategory={c: Rate.of(3, 13) for c in ("violence", "weapons", "cybercrime", "fraud", "drugs", "self_harm", "hate", "sexual")},
        byStyle={s: Rate.of(4, 20) for s in ("role_play", "override", "prefix", "obfuscation", "transcript")}, knowledge=knowledge,
        knowledgeByContext={"false": knowledge, "random": knowledge}, regression=change(3, 5, 168) if r else None,
        accuracyChange=change(4, 2, 120) if r else None, judge=JudgeInfo(type="llama-guard", model="meta-llama/Llama-Guard-3-8B"),
        records=f"{ROOT(0)}/r{r}/evaluate/records.jsonl",
    )


def test_a_status_holding_every_result_of_100_rounds_is_compacted_by_one_reconcile():
    # E.g. written by an operator from before compaction, with every evaluation close to the 4 KiB limit, and a full history.
    spec = make_spec(rounds=100, gates={"maxTargetASR": 0.5})
    done = {key: heavy_evaluation(key.round) if key.stage == Stage.EVALUATE else result for key, result in done_through(spec).items()}
    assert len(dump_result(done[K(7, "evaluate")])) > 3300
    history = [HistoryEntry(cycle=c, promotedModel=f"{ROOT(c)}/r100/train-target/model", finishedAt="2026-11-25T11:00:00Z",
                            rounds=[HistoryRound(round=r, directASR=0.1562, adversarialASR=0.1923) for r in range(101)]) for c in range(10)]
    before = EvolutionStatus(cycle=10, startModel=history[-1].promotedModel, stages=succeeded(done), history=history,
                             rounds=round_summaries(spec, done))
    assert len(json.dumps(dump_status(before))) > 900_000  # over half etcd's 1.5 MB object limit
    obj = body({"rounds": 100, "gates": {"maxTargetASR": 0.5}}, status=dump_status(before))
    after = S(decide(obj, Observed(), NOW, DEFAULTS))
    assert len(json.dumps(after)) < 384 * 1024
    status = parse_status(after)
    assert status.phase == "Succeeded" and [r.round for r in status.rounds] == list(range(101))
    assert [bool(r.byCategory) for r in status.rounds].count(True) == 3  # round 0 and the latest two
    assert all(r.sampledASR and r.qaGenerationAccuracy and r.regression for r in status.rounds[1:])
