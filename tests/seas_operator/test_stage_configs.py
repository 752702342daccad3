"""Stage configs: the typed contract the planner hands each stage, wired to the results before it."""

from __future__ import annotations

import json

import pytest

from seas_operator.planner import stage_graph
from seas_operator.stage_configs import build_stage_config
from seas_runtime.contract import Stage, StageConfig, StageKey, TrainConfig, dump_stage_config, parse_stage_config
from seas_runtime.layout import stage_dir
from tests.helpers.factories import BASE_TARGET, done_through, make_spec


def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


def round_trip(config: StageConfig) -> StageConfig:
    """The config as the runtime reads it after it travelled as JSON."""
    return parse_stage_config(json.dumps(dump_stage_config(config)))


@pytest.mark.parametrize("init", [False, True])
def test_every_stage_config_is_accepted_by_the_runtime(init):
    spec = make_spec(rounds=2, init=init, data={"seeds": "/data/seeds.jsonl", "helpful": "/data/helpful.jsonl"})
    done = done_through(spec)
    for key, _ in stage_graph(spec):
        config = build_stage_config("demo", spec, key, done, "/artifacts/demo/", cache_dir="/cache")
        parsed = parse_stage_config(json.dumps(dump_stage_config(config)))
        assert parsed.stage == key.stage
        assert parsed.round == key.round
        assert parsed.outputDir == f"/artifacts/demo/r{key.round}/{key.stage}"
        assert parsed.evolution == "demo"
        assert parsed.cacheDir == "/cache"


def test_stage_configs_wire_the_previous_results():
    spec = make_spec(rounds=2, init=True)
    done = done_through(spec)
    root = "/art"

    attack1 = round_trip(build_stage_config("demo", spec, K(1, "attack"), done, root))
    assert attack1.target.model == BASE_TARGET
    assert attack1.redTeam.model == "red-sft"

    attack2 = round_trip(build_stage_config("demo", spec, K(2, "attack"), done, root))
    assert attack2.target.model == "target-r1"
    assert attack2.redTeam.model == "red-r1"

    pairs2 = round_trip(build_stage_config("demo", spec, K(2, "pairs"), done, root))
    assert pairs2.records == "/art/r2/attack/records.jsonl"
    assert pairs2.maxPairs == spec.training.maxPairs

    tt = round_trip(build_stage_config("demo", spec, K(2, "train-target"), done, root))
    assert tt.model.model == "target-r1" and tt.pairsFile == "/art/r2/pairs/target.jsonl"
    tr = round_trip(build_stage_config("demo", spec, K(2, "train-redteam"), done, root))
    assert tr.model.model == "red-r1" and tr.pairsFile == "/art/r2/pairs/redteam.jsonl"

    ev2 = round_trip(build_stage_config("demo", spec, K(2, "evaluate"), done, root, start_model="promoted"))
    assert ev2.target.model == "target-r2"
    assert ev2.redTeam.model == "red-r2"
    assert ev2.baselineTarget.model == "promoted"  # red-team ASR is measured against the fixed round-0 target

    ev0 = round_trip(build_stage_config("demo", spec, K(0, "evaluate"), done, root))
    assert ev0.target.model == BASE_TARGET
    assert ev0.baselineTarget.model == BASE_TARGET


def test_stage_config_carries_the_spec_settings():
    spec = make_spec(rounds=1, seed=7, attack={"samplesPerSeed": 5}, training={"beta": 0.3})
    done = done_through(spec)
    attack = round_trip(build_stage_config("demo", spec, K(1, "attack"), done, "/a"))
    assert attack.seed == 7 and attack.attack.samplesPerSeed == 5
    train = round_trip(build_stage_config("demo", spec, K(1, "train-target"), done, "/a"))
    assert train.training.beta == 0.3


def test_stage_dir():
    assert stage_dir("/root/", K(3, "pairs")) == "/root/r3/pairs"


def test_configs_are_typed_models():
    spec = make_spec(rounds=1)
    config = build_stage_config("demo", spec, K(1, "train-redteam"), done_through(spec), "/a")
    assert isinstance(config, TrainConfig) and config.stage == Stage.TRAIN_REDTEAM
    assert config.key == K(1, "train-redteam")


