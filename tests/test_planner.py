"""The planner, stage configs, gates and round summaries: the pure control plane."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from seas_operator.api import GatesSpec, SafetyEvolutionSpec
from seas_operator.gates import accuracy_drop, evaluate_gates
from seas_operator.planner import (
    StageKey,
    current_stage,
    is_complete,
    next_stages,
    redteam_model,
    stage_graph,
    target_model,
)
from seas_operator.rounds import promoted_model, regressed, round_summaries
from seas_operator.stage_configs import build_stage_config, stage_dir
from seas_runtime.contract import (
    AttackResult,
    EvaluateResult,
    InitializeResult,
    JudgeInfo,
    KnowledgeFigures,
    PairsResult,
    TrainResult,
    VerdictCounts,
    parse_stage_config,
)

K = StageKey
BASE_TARGET = "org/target-base"
BASE_RED = "org/red-base"


def make_spec(rounds: int = 2, init: bool = False, train_redteam: bool = True, gates: dict | None = None, **extra) -> SafetyEvolutionSpec:
    return SafetyEvolutionSpec.model_validate(
        {
            "rounds": rounds,
            "target": {"model": BASE_TARGET},
            "redTeam": {"model": BASE_RED},
            "initialization": {"enabled": init},
            "training": {"trainRedTeam": train_redteam},
            "gates": gates or {},
            **extra,
        }
    )


def trained(model: str) -> SimpleNamespace:
    return SimpleNamespace(model=model)


def done_through(spec: SafetyEvolutionSpec, last: StageKey) -> dict:
    """Every stage of the graph up to and including ``last``, with placeholder results."""
    done = {}
    for key, _ in stage_graph(spec):
        done[key] = trained(f"{key.stage}@r{key.round}")
        if key == last:
            return done
    raise AssertionError(f"{last} is not in the graph")


# --- next_stages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "init, train_redteam, done_keys, running, expected",
    [
        (False, True, [], [], [K(0, "evaluate")]),
        (True, True, [], [], [K(0, "initialize")]),
        (True, True, [K(0, "initialize")], [], [K(0, "evaluate")]),
        (False, True, [K(0, "evaluate")], [], [K(1, "attack")]),
        (False, True, [K(0, "evaluate"), K(1, "attack")], [], [K(1, "pairs")]),
        # both trainings start together after pairs
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs")], [], [K(1, "train-target"), K(1, "train-redteam")]),
        # a fixed red team: only the target trains
        (False, False, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs")], [], [K(1, "train-target")]),
        # evaluate waits for both trainings
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs"), K(1, "train-target")], [K(1, "train-redteam")], []),
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs"), K(1, "train-redteam")], [], [K(1, "train-target")]),
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs"), K(1, "train-target"), K(1, "train-redteam")], [], [K(1, "evaluate")]),
        (False, False, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs"), K(1, "train-target")], [], [K(1, "evaluate")]),
        # a running stage is not started again
        (False, True, [], [K(0, "evaluate")], []),
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs")], [K(1, "train-target")], [K(1, "train-redteam")]),
        # the next round attacks after this round's evaluation
        (False, True, [K(0, "evaluate"), K(1, "attack"), K(1, "pairs"), K(1, "train-target"), K(1, "train-redteam"), K(1, "evaluate")], [], [K(2, "attack")]),
    ],
)
def test_next_stages(init, train_redteam, done_keys, running, expected):
    spec = make_spec(rounds=2, init=init, train_redteam=train_redteam)
    done = {key: trained("m") for key in done_keys}
    assert next_stages(spec, done, set(running)) == expected


def test_round_zero_is_a_baseline_evaluation_only():
    spec = make_spec(rounds=3)
    round0 = [key for key, _ in stage_graph(spec) if key.round == 0]
    assert round0 == [K(0, "evaluate")]
    assert [key for key, _ in stage_graph(spec)][-1] == K(3, "evaluate")


def test_every_stage_of_every_round_is_planned():
    spec = make_spec(rounds=3, init=True)
    keys = [key for key, _ in stage_graph(spec)]
    assert len(keys) == len(set(keys))
    assert len(keys) == 2 + 3 * 5
    for r in (1, 2, 3):
        assert {key.stage for key in keys if key.round == r} == {"attack", "pairs", "train-target", "train-redteam", "evaluate"}


def test_is_complete_and_current_stage():
    spec = make_spec(rounds=1)
    done: dict = {}
    steps = 0
    while not is_complete(spec, done):
        ready = next_stages(spec, done)
        assert ready, "planner stalled before completion"
        assert current_stage(spec, done) == ready[0]
        for key in ready:
            done[key] = trained("m")
        steps += 1
    assert steps == 5  # r0/evaluate, attack, pairs, both trainings together, evaluate
    assert current_stage(spec, done) is None
    assert next_stages(spec, done) == []


def test_is_complete_needs_the_last_evaluation():
    spec = make_spec(rounds=2)
    done = done_through(spec, K(2, "train-redteam"))
    assert not is_complete(spec, done)
    done[K(2, "evaluate")] = trained("m")
    assert is_complete(spec, done)


# --- child names and labels ---------------------------------------------------------


@pytest.mark.parametrize(
    "key, cycle, name",
    [
        (K(0, "evaluate"), 0, "demo-r0-evaluate"),
        (K(3, "train-redteam"), 0, "demo-r3-train-redteam"),
        (K(1, "attack"), 2, "demo-c2-r1-attack"),
    ],
)
def test_child_names_are_deterministic(key, cycle, name):
    assert key.child_name("demo", cycle) == name
    assert StageKey(key.round, key.stage).child_name("demo", cycle) == name
    assert len(key.child_name("a" * 40, cycle)) <= 63  # fits a Kubernetes label value


def test_stage_key_label():
    assert K(2, "pairs").label == "r2/pairs"


# --- model lineage ------------------------------------------------------------------


def test_target_lineage_follows_train_target_results():
    spec = make_spec(rounds=2)
    done = {K(1, "train-target"): trained("t1"), K(2, "train-target"): trained("t2")}
    assert target_model(spec, done, 0).model == BASE_TARGET
    assert target_model(spec, done, 0, start="promoted/model").model == "promoted/model"
    assert target_model(spec, done, 1).model == "t1"
    assert target_model(spec, done, 2).model == "t2"
    # the rest of the reference is kept
    assert target_model(spec, done, 1).engine == spec.target.engine


def test_redteam_lineage_with_initialization_and_training():
    spec = make_spec(rounds=2, init=True)
    done = {
        K(0, "initialize"): InitializeResult(round=0, model="red-sft", examples=80),
        K(1, "train-redteam"): TrainResult(round=1, stage="train-redteam", model="red1", trained=True, pairs=5),
    }
    assert redteam_model(spec, done, 0).model == "red-sft"
    assert redteam_model(spec, done, 1).model == "red1"


def test_fixed_redteam_keeps_its_latest_model():
    spec = make_spec(rounds=3, init=True, train_redteam=False)
    assert redteam_model(spec, {}, 2).model == BASE_RED
    done = {K(0, "initialize"): trained("red-sft")}
    assert redteam_model(spec, done, 3).model == "red-sft"


# --- stage configs ------------------------------------------------------------------


def attack_result(r: int) -> AttackResult:
    return AttackResult(round=r, records=f"/art/r{r}/attack/records.jsonl", prompts=4, responses=8,
                        counts=VerdictCounts(safe=4, unsafe=4), asr=0.5, judge=JudgeInfo(type="refusal-match"))


def pairs_result(r: int) -> PairsResult:
    return PairsResult(round=r, target=3, redteam=2, targetFile=f"/art/r{r}/pairs/target.jsonl", redteamFile=f"/art/r{r}/pairs/redteam.jsonl")


def train_result(r: int, stage: str, model: str) -> TrainResult:
    return TrainResult(round=r, stage=stage, model=model, trained=True, pairs=3)


def full_done(spec: SafetyEvolutionSpec) -> dict:
    done = {}
    for key, _ in stage_graph(spec):
        r = key.round
        done[key] = {
            "initialize": lambda: InitializeResult(round=0, model="red-sft", examples=80),
            "attack": lambda: attack_result(r),
            "pairs": lambda: pairs_result(r),
            "train-target": lambda: train_result(r, "train-target", f"target-r{r}"),
            "train-redteam": lambda: train_result(r, "train-redteam", f"red-r{r}"),
            "evaluate": lambda: trained("unused"),
        }[key.stage]()
    return done


@pytest.mark.parametrize("init", [False, True])
def test_every_stage_config_is_accepted_by_the_runtime(init):
    spec = make_spec(rounds=2, init=init, data={"seeds": "/data/seeds.jsonl", "helpful": "/data/helpful.jsonl"})
    done = full_done(spec)
    for key, _ in stage_graph(spec):
        config = build_stage_config("demo", spec, key, done, "/artifacts/demo/", cache_dir="/cache")
        parsed = parse_stage_config(json.dumps(config))
        assert parsed.stage == key.stage
        assert parsed.round == key.round
        assert parsed.outputDir == f"/artifacts/demo/r{key.round}/{key.stage}"
        assert parsed.evolution == "demo"
        assert parsed.cacheDir == "/cache"


def test_stage_configs_wire_the_previous_results():
    spec = make_spec(rounds=2, init=True)
    done = full_done(spec)
    root = "/art"

    attack1 = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(1, "attack"), done, root)))
    assert attack1.target.model == BASE_TARGET
    assert attack1.redTeam.model == "red-sft"

    attack2 = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(2, "attack"), done, root)))
    assert attack2.target.model == "target-r1"
    assert attack2.redTeam.model == "red-r1"

    pairs2 = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(2, "pairs"), done, root)))
    assert pairs2.records == "/art/r2/attack/records.jsonl"
    assert pairs2.maxPairs == spec.training.maxPairs

    tt = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(2, "train-target"), done, root)))
    assert tt.model.model == "target-r1" and tt.pairsFile == "/art/r2/pairs/target.jsonl"
    tr = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(2, "train-redteam"), done, root)))
    assert tr.model.model == "red-r1" and tr.pairsFile == "/art/r2/pairs/redteam.jsonl"

    ev2 = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(2, "evaluate"), done, root, start_model="promoted")))
    assert ev2.target.model == "target-r2"
    assert ev2.redTeam.model == "red-r2"
    assert ev2.baselineTarget.model == "promoted"  # red-team ASR is measured against the fixed round-0 target

    ev0 = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(0, "evaluate"), done, root)))
    assert ev0.target.model == BASE_TARGET
    assert ev0.baselineTarget.model == BASE_TARGET


def test_stage_config_carries_the_spec_settings():
    spec = make_spec(rounds=1, seed=7, attack={"samplesPerSeed": 5}, training={"beta": 0.3})
    done = full_done(spec)
    attack = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(1, "attack"), done, "/a")))
    assert attack.seed == 7 and attack.attack.samplesPerSeed == 5
    train = parse_stage_config(json.dumps(build_stage_config("demo", spec, K(1, "train-target"), done, "/a")))
    assert train.training.beta == 0.3


def test_stage_dir_and_unknown_stage():
    assert stage_dir("/root/", K(3, "pairs")) == "/root/r3/pairs"
    with pytest.raises(ValueError):
        build_stage_config("demo", make_spec(), K(1, "deploy"), {}, "/a")


# --- gates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gates, asr, refusal, acc, base_acc, errors, passed, failure",
    [
        ({}, 0.9, 0.9, 0.1, 0.9, 0.0, True, None),  # no gates configured
        ({"maxTargetASR": 0.2}, 0.2, 0.0, 0.5, 0.5, 0.0, True, None),  # at the limit passes
        ({"maxTargetASR": 0.2}, 0.25, 0.0, 0.5, 0.5, 0.0, False, "target ASR"),
        ({"maxBenignRefusalRate": 0.3}, 0.1, 0.31, 0.5, 0.5, 0.0, False, "benign refusal"),
        ({"maxAccuracyDrop": 0.05}, 0.1, 0.1, 0.40, 0.50, 0.0, False, "accuracy drop"),
        ({"maxAccuracyDrop": 0.05}, 0.1, 0.1, 0.46, 0.50, 0.0, True, None),
        ({"maxAccuracyDrop": 0.05}, 0.1, 0.1, 0.60, 0.50, 0.0, True, None),  # improved
        ({}, 0.1, 0.1, 0.5, 0.5, 0.11, False, "judge error rate"),  # default maxJudgeErrorRate 0.1
        ({"maxJudgeErrorRate": 0.5}, 0.1, 0.1, 0.5, 0.5, 0.4, True, None),
        ({}, None, 0.1, 0.5, 0.5, 0.0, False, "no target answer"),
    ],
)
def test_gates(gates, asr, refusal, acc, base_acc, errors, passed, failure):
    outcome = evaluate_gates(GatesSpec(**gates), asr, refusal, acc, base_acc, errors)
    assert outcome.passed is passed
    if failure:
        assert any(failure in f for f in outcome.failures), outcome.failures
    else:
        assert outcome.failures == []


def test_every_failing_gate_is_listed():
    gates = GatesSpec(maxTargetASR=0.1, maxBenignRefusalRate=0.1, maxAccuracyDrop=0.01)
    outcome = evaluate_gates(gates, 0.5, 0.5, 0.2, 0.5, 0.5)
    assert not outcome.passed
    assert len(outcome.failures) == 4


def test_accuracy_drop():
    assert accuracy_drop(0.4, 0.5) == pytest.approx(0.1)
    assert accuracy_drop(0.6, 0.5) == pytest.approx(-0.1)


# --- round summaries ------------------------------------------------------------------


def evaluation(r: int, asr: float | None, refusal: float, accuracy: float, errors: float = 0.0, seconds: float = 10.0) -> EvaluateResult:
    return EvaluateResult(
        round=r, seconds=seconds, targetASR=asr, targetCounts=VerdictCounts(safe=10, unsafe=5), byCategory={"fraud": asr or 0.0},
        byStyle={"role_play": asr or 0.0}, redteamASR=0.3 if r else None, benignRefusalRate=refusal, judgeErrorRate=errors,
        knowledge=KnowledgeFigures(accuracy=accuracy, perplexity=5.0, entropy=1.0, probability=0.4),
        judge=JudgeInfo(type="refusal-match"), records=f"/art/r{r}/evaluate/records.jsonl",
    )


def finished_rounds(spec: SafetyEvolutionSpec, figures: dict[int, tuple]) -> dict:
    done = {K(0, "evaluate"): evaluation(0, *figures[0])}
    for r in range(1, spec.rounds + 1):
        if r not in figures:
            break
        done[K(r, "attack")] = attack_result(r).model_copy(update={"seconds": 1.0})
        done[K(r, "pairs")] = pairs_result(r).model_copy(update={"seconds": 2.0})
        done[K(r, "train-target")] = train_result(r, "train-target", f"target-r{r}").model_copy(update={"seconds": 3.0})
        done[K(r, "train-redteam")] = train_result(r, "train-redteam", f"red-r{r}").model_copy(update={"seconds": 4.0})
        done[K(r, "evaluate")] = evaluation(r, *figures[r])
    return done


def test_round_summaries_figures_and_gates():
    spec = make_spec(rounds=3, gates={"maxTargetASR": 0.3, "maxAccuracyDrop": 0.05})
    done = finished_rounds(spec, {0: (0.6, 0.1, 0.50), 1: (0.35, 0.1, 0.50), 2: (0.25, 0.12, 0.48)})
    summaries = round_summaries(spec, done)
    assert [s["round"] for s in summaries] == [0, 1, 2]  # round 0 first; round 3 not evaluated yet
    r0, r1, r2 = summaries
    assert r0["target_asr"] == 0.6 and r0["gate"] is None and r0["redteam_asr"] is None
    assert r0["pairs"] == {"target": 0, "redteam": 0}
    assert r1["gate"]["passed"] is False and "target ASR" in r1["gate"]["failures"][0]
    assert r2["gate"] == {"passed": True, "failures": []}
    assert r2["pairs"] == {"target": 3, "redteam": 2}
    assert r2["knowledge"] == {"accuracy": 0.48, "perplexity": 5.0, "entropy": 1.0, "probability": 0.4}
    assert r2["accuracy_drop"] == pytest.approx(0.02)
    assert r2["seconds"] == pytest.approx(1 + 2 + 3 + 4 + 10)
    assert r2["target_model"] == "target-r2"
    assert r2["judge"] == {"type": "refusal-match", "model": None}
    assert r2["by_category"] == {"fraud": 0.25}


def test_promoted_model_is_the_latest_round_that_passed():
    spec = make_spec(rounds=3, gates={"maxTargetASR": 0.3})
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.2, 0.1, 0.5), 2: (0.25, 0.1, 0.5), 3: (0.5, 0.1, 0.5)}))
    assert promoted_model(summaries, BASE_TARGET) == "target-r2"
    assert regressed(summaries)["round"] == 3


def test_nothing_promoted_when_no_round_passes():
    spec = make_spec(rounds=2, gates={"maxTargetASR": 0.1})
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.5, 0.1, 0.5), 2: (0.4, 0.1, 0.5)}))
    assert promoted_model(summaries, BASE_TARGET) == BASE_TARGET
    assert regressed(summaries)["round"] == 2


def test_no_regression_when_the_last_round_passes_or_only_baseline_exists():
    spec = make_spec(rounds=2, gates={"maxTargetASR": 0.5})
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.4, 0.1, 0.5)}))
    assert regressed(summaries) is None
    baseline_only = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5)}))
    assert regressed(baseline_only) is None
    assert promoted_model(baseline_only, BASE_TARGET) == BASE_TARGET
    assert regressed([]) is None


def test_judge_errors_fail_the_gate_of_a_round():
    spec = make_spec(rounds=1)
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.1, 0.1, 0.5, 0.5)}))
    assert summaries[1]["gate"]["passed"] is False
    assert "judge error rate" in summaries[1]["gate"]["failures"][0]
