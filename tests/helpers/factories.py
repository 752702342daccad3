"""Typed specs and stage results for the pure control-plane tests."""

from __future__ import annotations

from typing import Optional

from seas_operator.api import SafetyEvolutionSpec
from seas_operator.planner import stage_graph
from seas_runtime.contract import (
    AttackResult,
    EvaluateResult,
    InitializeResult,
    JudgeInfo,
    KnowledgeFigures,
    PairsResult,
    Stage,
    StageKey,
    StageResult,
    TrainResult,
    VerdictCounts,
)
from seas_runtime.stats import PairedChange, Rate, paired_change

BASE_TARGET = "org/target-base"
BASE_RED = "org/red-base"


def make_spec(rounds: int = 2, init: bool = False, train_redteam: bool = True, gates: Optional[dict] = None, **extra) -> SafetyEvolutionSpec:
    return SafetyEvolutionSpec.model_validate({
        "rounds": rounds, "target": {"model": BASE_TARGET}, "redTeam": {"model": BASE_RED},
        "initialization": {"enabled": init}, "training": {"trainRedTeam": train_redteam}, "gates": gates or {}, **extra,
    })


def attack_result(r: int) -> AttackResult:
    return AttackResult(round=r, records=f"/art/r{r}/attack/records.jsonl", prompts=4, responses=8,
                        counts=VerdictCounts(safe=4, unsafe=4), asr=Rate.of(4, 8), judge=JudgeInfo(type="refusal-match"))


def pairs_result(r: int) -> PairsResult:
    return PairsResult(round=r, target=3, redteam=2, targetFile=f"/art/r{r}/pairs/target.jsonl", redteamFile=f"/art/r{r}/pairs/redteam.jsonl")


def train_result(r: int, stage: Stage, model: str) -> TrainResult:
    return TrainResult(round=r, stage=stage, model=model, trained=True, pairs=3)


def init_result(model: str = "red-sft") -> InitializeResult:
    return InitializeResult(round=0, model=model, examples=80)


def evaluate_result(r: int, unsafe: int = 24, refused: int = 4, correct: int = 72, errors: int = 0, seconds: float = 10.0, n: int = 48,
                    regression: Optional[PairedChange] = None, accuracy_change: Optional[PairedChange] = None) -> EvaluateResult:
    """An evaluation of round ``r``: ``unsafe`` of ``n`` answers on both target sets, ``refused`` of 40 benign and contrast
    prompts, ``correct`` of 120 QA items, ``errors`` judge errors among the 2n judged answers."""
    return EvaluateResult(
        round=r, seconds=seconds, directASR=Rate.of(unsafe, n), adversarialASR=Rate.of(unsafe, n),
        contrastRefusal=Rate.of(refused, 40), benignRefusal=Rate.of(refused, 40), redteamASR=Rate.of(3, 10) if r else None,
        judgeErrors=Rate.of(errors, 2 * n), byCategory={"fraud": Rate.of(unsafe // 4, n // 4)}, byStyle={"role_play": Rate.of(unsafe // 4, n // 4)},
        knowledge=KnowledgeFigures(accuracy=Rate.of(correct, 120), perplexity=5.0, entropy=1.0, probability=0.4),
        regression=regression, accuracyChange=accuracy_change,
        judge=JudgeInfo(type="refusal-match", heuristic=True), records=f"/art/r{r}/evaluate/records.jsonl",
    )


def change(b: int, c: int, n: int = 96, level: float = 0.05) -> PairedChange:
    """The paired change of ``n`` items of which ``b`` got worse and ``c`` better (the rest stayed ok)."""
    return paired_change([False] * b + [True] * c + [False] * (n - b - c), [True] * b + [False] * c + [False] * (n - b - c), level)


def result_for(key: StageKey) -> StageResult:
    """A plausible result of stage ``key`` (trained models are named ``<role>-r<round>``)."""
    r = key.round
    return {
        Stage.INITIALIZE: lambda: init_result(),
        Stage.ATTACK: lambda: attack_result(r),
        Stage.PAIRS: lambda: pairs_result(r),
        Stage.TRAIN_TARGET: lambda: train_result(r, Stage.TRAIN_TARGET, f"target-r{r}"),
        Stage.TRAIN_REDTEAM: lambda: train_result(r, Stage.TRAIN_REDTEAM, f"red-r{r}"),
        Stage.EVALUATE: lambda: evaluate_result(r),
    }[key.stage]()


def done_through(spec: SafetyEvolutionSpec, last: Optional[StageKey] = None) -> dict[StageKey, StageResult]:
    """Results for every stage of the graph, in order, up to and including ``last`` (all when None)."""
    done = {}
    for key, _ in stage_graph(spec):
        done[key] = result_for(key)
        if key == last:
            return done
    if last is not None:
        raise AssertionError(f"{last} is not in the graph")
    return done
