"""Pure summaries of finished rounds: the one ``RoundStatus`` per round that status, metrics and reports share."""

from __future__ import annotations

from typing import Optional

from seas_runtime.contract import EvaluateResult, PairsResult, Stage, StageKey, TrainResult

from .api import SafetyEvolutionSpec
from .gates import accuracy_drop, evaluate_gates
from .planner import Done, result_of, stage_graph
from .status import GateResult, PairCounts, RoundStatus


def round_summaries(spec: SafetyEvolutionSpec, done: Done) -> list[RoundStatus]:
    """One entry per evaluated round, round 0 first, with gates applied to rounds >= 1."""
    baseline: Optional[EvaluateResult] = result_of(done, StageKey(0, Stage.EVALUATE), EvaluateResult)
    base_accuracy = baseline.knowledge.accuracy if baseline is not None else None
    out = []
    for r in sorted({key.round for key, _ in stage_graph(spec)}):
        evaluation: Optional[EvaluateResult] = result_of(done, StageKey(r, Stage.EVALUATE), EvaluateResult)
        if evaluation is None:
            continue
        pairs: Optional[PairsResult] = result_of(done, StageKey(r, Stage.PAIRS), PairsResult)
        trained: Optional[TrainResult] = result_of(done, StageKey(r, Stage.TRAIN_TARGET), TrainResult)
        knowledge = evaluation.knowledge
        gate = None
        if r > 0 and base_accuracy is not None:
            outcome = evaluate_gates(spec.gates, evaluation.targetASR, evaluation.benignRefusalRate, knowledge.accuracy, base_accuracy, evaluation.judgeErrorRate)
            gate = GateResult(passed=outcome.passed, failures=outcome.failures)
        out.append(RoundStatus(
            round=r,
            targetASR=evaluation.targetASR,
            redteamASR=evaluation.redteamASR,
            benignRefusalRate=evaluation.benignRefusalRate,
            judgeErrorRate=evaluation.judgeErrorRate,
            qaAccuracy=knowledge.accuracy,
            qaPerplexity=knowledge.perplexity,
            qaEntropy=knowledge.entropy,
            qaAnswerProbability=knowledge.probability,
            accuracyDrop=accuracy_drop(knowledge.accuracy, base_accuracy) if base_accuracy is not None else 0.0,
            byCategory=dict(evaluation.byCategory),
            byStyle=dict(evaluation.byStyle),
            pairs=PairCounts(target=pairs.target, redteam=pairs.redteam) if pairs is not None else PairCounts(),
            gate=gate,
            judge=evaluation.judge,
            seconds=round(sum(res.seconds or 0.0 for key, res in done.items() if key.round == r), 1),
            targetModel=trained.model if trained is not None else None,
            records=evaluation.records,
        ))
    return out


def promoted_model(summaries: list[RoundStatus], start_model: str) -> str:
    """The target of the latest round that passed its gates, else the starting model."""
    promoted = start_model
    for entry in summaries:
        if entry.gate and entry.gate.passed and entry.targetModel:
            promoted = entry.targetModel
    return promoted
