"""Pure summaries of finished rounds: the one ``RoundStatus`` per round that status, metrics and reports share.

In mode evaluate round 0 is the whole cycle: its gates apply (there is nothing to
promote, but a re-check that fails them says so), and its attack, when one ran,
gives ``attackASR``.
"""

from __future__ import annotations

from typing import Sequence

from seas_runtime.contract import AttackResult, EvaluateResult, PairsResult, Stage, StageKey, TrainResult

from .api import SafetyEvolutionSpec
from .gates import evaluate_gates
from .planner import Done, result_of, stage_graph
from .status import GateResult, PairCounts, RoundStatus

BREAKDOWN_ROUNDS = 2  # latest rounds whose byCategory/byStyle stay in status (round 0's always does)


def round_summary(round_: int, evaluation: EvaluateResult, done: Done) -> RoundStatus:
    """A round's figures from its evaluation and the stages before it (no gate yet)."""
    pairs = result_of(done, StageKey(round_, Stage.PAIRS), PairsResult)
    trained = result_of(done, StageKey(round_, Stage.TRAIN_TARGET), TrainResult)
    # Only round 0 of mode evaluate attacks its own round's target; round r's attack is made with round r-1's models.
    attack = result_of(done, StageKey(0, Stage.ATTACK), AttackResult) if round_ == 0 else None
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
        attackASR=attack.asr if attack is not None else None,
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
        pairs=PairCounts(target=pairs.target, targetOwn=pairs.targetOwn, helpful=pairs.helpful, redteam=pairs.redteam) if pairs is not None else PairCounts(),
        judge=evaluation.judge,
        seconds=round(sum(res.seconds or 0.0 for key, res in done.items() if key.round == round_ and res is not None), 1),
        targetModel=trained.model if trained is not None else None,
        records=evaluation.records,
    )


def round_summaries(spec: SafetyEvolutionSpec, done: Done, previous: Sequence[RoundStatus] = ()) -> list[RoundStatus]:
    """One entry per evaluated round, round 0 first, with gates applied to rounds >= 1 (mode evaluate: to round 0).

    A round whose results were compacted away (its evaluation finished, its result is None) keeps its entry
    from ``previous`` (the status's ``rounds``), which was summarised while its results were still there.
    """
    earlier = {entry.round: entry for entry in previous}
    out = []
    for r in sorted({key.round for key, _ in stage_graph(spec)}):
        key = StageKey(r, Stage.EVALUATE)
        if key in done and done[key] is None:
            if r not in earlier:
                continue  # no entry to carry over (status.rounds was edited or lost): its figures are gone
            summary = earlier[r]
        else:
            evaluation = result_of(done, key, EvaluateResult)
            if evaluation is None:
                continue
            summary = round_summary(r, evaluation, done)
        if r > 0 or spec.evaluate_only:
            outcome = evaluate_gates(spec.gates, summary)
            summary = summary.model_copy(update={"gate": GateResult(passed=outcome.passed, failures=outcome.failures)})
        out.append(summary)
    return out


def trim_breakdowns(summaries: Sequence[RoundStatus], keep_latest: int = BREAKDOWN_ROUNDS) -> list[RoundStatus]:
    """The summaries with the per-category and per-style ASR left out except for round 0 and the latest ``keep_latest`` rounds.

    Those breakdowns are some 40% of a round's entry in status, and the report and the runbooks compare only
    the first round with the latest (and the latest with the one before); every other figure stays.
    """
    latest = list(summaries)[-keep_latest:] if keep_latest > 0 else []
    kept = {0} | {entry.round for entry in latest}
    return [entry if entry.round in kept or not (entry.byCategory or entry.byStyle) else entry.model_copy(update=dict(byCategory={}, byStyle={}))
            for entry in summaries]


def promoted_model(summaries: list[RoundStatus], start_model: str) -> str:
    """The target of the latest round that passed its gates, else the starting model."""
    promoted = start_model
    for entry in summaries:
        if entry.gate and entry.gate.passed and entry.targetModel:
            promoted = entry.targetModel
    return promoted
