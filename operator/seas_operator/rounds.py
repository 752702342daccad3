"""Pure summaries of finished rounds: the one ``RoundStatus`` per round that status, metrics and reports share."""

from __future__ import annotations

from seas_runtime.contract import EvaluateResult, PairsResult, Stage, StageKey, TrainResult

from .api import SafetyEvolutionSpec
from .gates import evaluate_gates
from .planner import Done, result_of, stage_graph
from .status import GateResult, PairCounts, RoundStatus


def round_summary(round_: int, evaluation: EvaluateResult, done: Done) -> RoundStatus:
    """A round's figures from its evaluation and the stages before it (no gate yet)."""
    pairs = result_of(done, StageKey(round_, Stage.PAIRS), PairsResult)
    trained = result_of(done, StageKey(round_, Stage.TRAIN_TARGET), TrainResult)
    knowledge = evaluation.knowledge
    generation = knowledge.generation
    return RoundStatus(
        round=round_,
        directASR=evaluation.directASR,
        adversarialASR=evaluation.adversarialASR,
        sampledASR=evaluation.sampledASR,
        contrastRefusalRate=evaluation.contrastRefusal,
        benignRefusalRate=evaluation.benignRefusal,
        redteamASR=evaluation.redteamASR,
        judgeErrorRate=evaluation.judgeErrors,
        qaAccuracy=knowledge.accuracy,
        qaPerplexity=knowledge.perplexity,
        qaEntropy=knowledge.entropy,
        qaAnswerProbability=knowledge.probability,
        qaAccuracyNorm=knowledge.accuracyNorm,
        qaGenerationAccuracy=generation.accuracy if generation else None,
        qaGenerationPerplexity=generation.perplexity if generation else None,
        qaGenerationEntropy=generation.entropy if generation else None,
        qaGenerationTopProbability=generation.topProbability if generation else None,
        accuracyChange=evaluation.accuracyChange,
        regression=evaluation.regression,
        byCategory=dict(evaluation.byCategory),
        byStyle=dict(evaluation.byStyle),
        pairs=PairCounts(target=pairs.target, redteam=pairs.redteam) if pairs is not None else PairCounts(),
        judge=evaluation.judge,
        seconds=round(sum(res.seconds or 0.0 for key, res in done.items() if key.round == round_), 1),
        targetModel=trained.model if trained is not None else None,
        records=evaluation.records,
    )


def round_summaries(spec: SafetyEvolutionSpec, done: Done) -> list[RoundStatus]:
    """One entry per evaluated round, round 0 first, with gates applied to rounds >= 1."""
    out = []
    for r in sorted({key.round for key, _ in stage_graph(spec)}):
        evaluation = result_of(done, StageKey(r, Stage.EVALUATE), EvaluateResult)
        if evaluation is None:
            continue
        summary = round_summary(r, evaluation, done)
        if r > 0:
            outcome = evaluate_gates(spec.gates, summary)
            summary = summary.model_copy(update={"gate": GateResult(passed=outcome.passed, failures=outcome.failures)})
        out.append(summary)
    return out


def promoted_model(summaries: list[RoundStatus], start_model: str) -> str:
    """The target of the latest round that passed its gates, else the starting model."""
    promoted = start_model
    for entry in summaries:
        if entry.gate and entry.gate.passed and entry.targetModel:
            promoted = entry.targetModel
    return promoted
