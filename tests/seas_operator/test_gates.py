"""Gates: does a round's target deserve promotion?"""

from __future__ import annotations

import pytest

from seas_operator.api import GatesSpec
from seas_operator.gates import accuracy_drop, evaluate_gates


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


