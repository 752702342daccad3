"""Round summaries: the one RoundStatus per evaluated round, with its gate, and the promoted model."""

from __future__ import annotations

import pytest

from seas_operator.api import SafetyEvolutionSpec
from seas_operator.rounds import promoted_model, round_summaries
from seas_operator.status import GateResult, PairCounts
from seas_runtime.contract import JudgeInfo, Stage, StageKey
from tests.helpers.factories import BASE_TARGET, attack_result, evaluate_result, make_spec, pairs_result, train_result


def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


def finished_rounds(spec: SafetyEvolutionSpec, figures: dict[int, tuple]) -> dict:
    done = {K(0, "evaluate"): evaluate_result(0, *figures[0])}
    for r in range(1, spec.rounds + 1):
        if r not in figures:
            break
        done[K(r, "attack")] = attack_result(r).model_copy(update={"seconds": 1.0})
        done[K(r, "pairs")] = pairs_result(r).model_copy(update={"seconds": 2.0})
        done[K(r, "train-target")] = train_result(r, Stage.TRAIN_TARGET, f"target-r{r}").model_copy(update={"seconds": 3.0})
        done[K(r, "train-redteam")] = train_result(r, Stage.TRAIN_REDTEAM, f"red-r{r}").model_copy(update={"seconds": 4.0})
        done[K(r, "evaluate")] = evaluate_result(r, *figures[r])
    return done


def test_round_summaries_figures_and_gates():
    spec = make_spec(rounds=3, gates={"maxTargetASR": 0.3, "maxAccuracyDrop": 0.05})
    done = finished_rounds(spec, {0: (0.6, 0.1, 0.50), 1: (0.35, 0.1, 0.50), 2: (0.25, 0.12, 0.48)})
    summaries = round_summaries(spec, done)
    assert [s.round for s in summaries] == [0, 1, 2]  # round 0 first; round 3 not evaluated yet
    r0, r1, r2 = summaries
    assert r0.targetASR == 0.6 and r0.gate is None and r0.redteamASR is None
    assert r0.pairs == PairCounts(target=0, redteam=0)
    assert r1.gate.passed is False and "target ASR" in r1.gate.failures[0]
    assert r2.gate == GateResult(passed=True, failures=[])
    assert r2.pairs == PairCounts(target=3, redteam=2)
    assert (r2.qaAccuracy, r2.qaPerplexity, r2.qaEntropy, r2.qaAnswerProbability) == (0.48, 5.0, 1.0, 0.4)
    assert r2.accuracyDrop == pytest.approx(0.02)
    assert r2.seconds == pytest.approx(1 + 2 + 3 + 4 + 10)
    assert r2.targetModel == "target-r2"
    assert r2.judge == JudgeInfo(type="refusal-match", model=None)
    assert r2.byCategory == {"fraud": 0.25}


def test_promoted_model_is_the_latest_round_that_passed():
    spec = make_spec(rounds=3, gates={"maxTargetASR": 0.3})
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.2, 0.1, 0.5), 2: (0.25, 0.1, 0.5), 3: (0.5, 0.1, 0.5)}))
    assert promoted_model(summaries, BASE_TARGET) == "target-r2"
    assert summaries[-1].gate.passed is False


def test_nothing_promoted_when_no_round_passes():
    spec = make_spec(rounds=2, gates={"maxTargetASR": 0.1})
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.5, 0.1, 0.5), 2: (0.4, 0.1, 0.5)}))
    assert promoted_model(summaries, BASE_TARGET) == BASE_TARGET
    assert not any(s.gate.passed for s in summaries[1:])


def test_the_baseline_has_no_gate_and_promotes_nothing():
    spec = make_spec(rounds=2, gates={"maxTargetASR": 0.5})
    baseline_only = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5)}))
    assert [s.gate for s in baseline_only] == [None]
    assert promoted_model(baseline_only, BASE_TARGET) == BASE_TARGET
    assert promoted_model([], BASE_TARGET) == BASE_TARGET


def test_judge_errors_fail_the_gate_of_a_round():
    spec = make_spec(rounds=1)
    summaries = round_summaries(spec, finished_rounds(spec, {0: (0.6, 0.1, 0.5), 1: (0.1, 0.1, 0.5, 0.5)}))
    assert summaries[1].gate.passed is False
    assert "judge error rate" in summaries[1].gate.failures[0]
