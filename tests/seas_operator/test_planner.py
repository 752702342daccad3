"""The planner: the stage graph, what runs next, and the lineage of models."""

from __future__ import annotations

import pytest

from seas_operator.planner import current_stage, is_complete, next_stages, redteam_model, stage_graph, target_model
from seas_runtime.contract import Stage, StageKey
from tests.helpers.factories import (
    BASE_RED,
    BASE_TARGET,
    attack_result,
    done_through,
    init_result,
    make_spec,
    result_for,
    train_result,
)


def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


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
    done = {key: result_for(key) for key in done_keys}
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
        assert {key.stage for key in keys if key.round == r} == set(Stage) - {Stage.INITIALIZE}


def test_is_complete_and_current_stage():
    spec = make_spec(rounds=1)
    done: dict = {}
    steps = 0
    while not is_complete(spec, done):
        ready = next_stages(spec, done)
        assert ready, "planner stalled before completion"
        assert current_stage(spec, done) == ready[0]
        for key in ready:
            done[key] = result_for(key)
        steps += 1
    assert steps == 5  # r0/evaluate, attack, pairs, both trainings together, evaluate
    assert current_stage(spec, done) is None
    assert next_stages(spec, done) == []


def test_is_complete_needs_the_last_evaluation():
    spec = make_spec(rounds=2)
    done = done_through(spec, K(2, "train-redteam"))
    assert not is_complete(spec, done)
    done[K(2, "evaluate")] = result_for(K(2, "evaluate"))
    assert is_complete(spec, done)


# --- model lineage ------------------------------------------------------------------


def test_target_lineage_follows_train_target_results():
    spec = make_spec(rounds=2)
    done = {K(1, "train-target"): train_result(1, Stage.TRAIN_TARGET, "t1"), K(2, "train-target"): train_result(2, Stage.TRAIN_TARGET, "t2")}
    assert target_model(spec, done, 0).model == BASE_TARGET
    assert target_model(spec, done, 0, start="promoted/model").model == "promoted/model"
    assert target_model(spec, done, 1).model == "t1"
    assert target_model(spec, done, 2).model == "t2"
    # the rest of the reference is kept
    assert target_model(spec, done, 1).engine == spec.target.engine


def test_redteam_lineage_with_initialization_and_training():
    spec = make_spec(rounds=2, init=True)
    done = {
        K(0, "initialize"): init_result("red-sft"),
        K(1, "train-redteam"): train_result(1, Stage.TRAIN_REDTEAM, "red1"),
    }
    assert redteam_model(spec, done, 0).model == "red-sft"
    assert redteam_model(spec, done, 1).model == "red1"


def test_fixed_redteam_keeps_its_latest_model():
    spec = make_spec(rounds=3, init=True, train_redteam=False)
    assert redteam_model(spec, {}, 2).model == BASE_RED
    done = {K(0, "initialize"): init_result("red-sft")}
    assert redteam_model(spec, done, 3).model == "red-sft"




def test_a_result_of_the_wrong_type_is_an_error_not_a_model():
    spec = make_spec(rounds=1)
    with pytest.raises(TypeError, match="not a TrainResult"):
        target_model(spec, {K(1, "train-target"): attack_result(1)}, 1)


# --- stage keys -----------------------------------------------------------------------


@pytest.mark.parametrize("key, label", [(K(2, "pairs"), "r2/pairs"), (K(0, "evaluate"), "r0/evaluate"), (K(11, "train-redteam"), "r11/train-redteam")])
def test_stage_key_label_round_trips(key, label):
    assert key.label == label
    assert StageKey.from_label(label) == key


@pytest.mark.parametrize("label", ["r1", "1/attack", "rx/attack", "r1/deploy", ""])
def test_bad_stage_labels_are_refused(label):
    with pytest.raises(ValueError):
        StageKey.from_label(label)


# --- mode evaluate (issue 12) ------------------------------------------------------------


def evaluate_spec(attack: bool = False, **extra):
    from seas_operator.api import SafetyEvolutionSpec

    return SafetyEvolutionSpec.model_validate({"mode": "evaluate", "target": {"model": BASE_TARGET}, "redTeam": {"model": BASE_RED},
                                               "evaluateOnly": {"attack": attack}, **extra})


@pytest.mark.parametrize(
    "attack, extra, done_keys, running, expected",
    [
        # a re-check is the evaluation of the given target, nothing before it
        (False, {}, [], [], [K(0, "evaluate")]),
        (False, {}, [K(0, "evaluate")], [], []),
        # with an attack: both read the untouched target, so both start at once
        (True, {}, [], [], [K(0, "evaluate"), K(0, "attack")]),
        (True, {}, [K(0, "evaluate")], [], [K(0, "attack")]),
        (True, {}, [], [K(0, "evaluate")], [K(0, "attack")]),
        (True, {}, [K(0, "evaluate"), K(0, "attack")], [], []),
        # training-only settings are ignored: no initialization, pairs or training, whatever rounds says
        (False, {"rounds": 5, "initialization": {"enabled": True}, "training": {"trainRedTeam": True}}, [], [], [K(0, "evaluate")]),
        (False, {"rounds": 5, "initialization": {"enabled": True}}, [K(0, "evaluate")], [], []),
    ],
)
def test_next_stages_in_mode_evaluate(attack, extra, done_keys, running, expected):
    spec = evaluate_spec(attack, **extra)
    done = {key: result_for(key) for key in done_keys}
    assert next_stages(spec, done, set(running)) == expected
    assert is_complete(spec, done) == (not expected and not running)


@pytest.mark.parametrize("attack, graph", [
    (False, [(K(0, "evaluate"), ())]),
    (True, [(K(0, "evaluate"), ()), (K(0, "attack"), ())]),
])
def test_mode_evaluate_is_one_round_0_per_cycle(attack, graph):
    spec = evaluate_spec(attack, rounds=3)
    assert stage_graph(spec) == graph
    assert current_stage(spec, {}) == K(0, "evaluate")
    assert target_model(spec, {}, 0).model == BASE_TARGET


@pytest.mark.parametrize("spec, text", [
    (lambda: make_spec(rounds=3), "3 rounds"),
    (lambda: evaluate_spec(), "evaluate only"),
    (lambda: evaluate_spec(attack=True), "evaluate only, with an attack"),
])
def test_describe_says_what_a_cycle_runs(spec, text):
    from seas_operator.planner import describe

    assert describe(spec()) == text
