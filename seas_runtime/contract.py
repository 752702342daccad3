"""The stage contract: a typed JSON config in, a small typed JSON result out.

The control plane (``seas run``'s local executor and the operator's Jobs) builds
a stage config, runs ``seas-runtime <stage> --config FILE``, and reads back a
result small enough for a container termination message (4 KiB). Both halves
use these models and nothing else: configs are built as models and dumped, and
a result is parsed once into its model and read as such everywhere.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .stats import PairedChange, Rate
from .settings import AttackSpec, ClassifierSpec, DataSpec, EvaluationSpec, InitializationSpec, ModelRef, PairsSpec, TrainingSpec

MAX_RESULT_BYTES = 4096

# Exit codes of ``seas-runtime`` that mean a user mistake: another attempt would fail the same way.
EXIT_FAILED = 1  # the stage failed in a way a retry may cure (a crash, a served model that stayed unavailable)
EXIT_CONFIG = 2  # the stage config is unreadable or invalid
EXIT_INPUT = 3  # a data set is malformed, or a model is missing, gated without a token, or unloadable
USER_ERROR_EXIT_CODES = frozenset({EXIT_CONFIG, EXIT_INPUT})
# torchrun turns every failed worker's exit code into 1, so a stage also writes its user-error code as the first
# line of its termination message; the operator reads it back from there (``user_error_code``).
_USER_ERROR_LINE = re.compile(r"^seas-runtime exit (\d+): ")


def user_error_message(code: int, message: str) -> str:
    """The termination message of a stage that failed on a user error: its exit code, then what went wrong."""
    return f"seas-runtime exit {code}: {message}"


def user_error_code(message: Optional[str]) -> Optional[int]:
    """The user-error exit code a termination message carries (see ``user_error_message``), or None."""
    match = _USER_ERROR_LINE.match(message or "")
    code = int(match.group(1)) if match else None
    return code if code in USER_ERROR_EXIT_CODES else None


class Stage(StrEnum):
    """The stages of a SEAS cycle, in execution order."""

    INITIALIZE = "initialize"
    ATTACK = "attack"
    PAIRS = "pairs"
    TRAIN_TARGET = "train-target"
    TRAIN_REDTEAM = "train-redteam"
    EVALUATE = "evaluate"


TRAIN_STAGES = (Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM)


@dataclass(frozen=True, order=True)
class StageKey:
    """One stage of one round; its label ``r<round>/<stage>`` keys status entries and artifact folders."""

    round: int
    stage: Stage

    @property
    def label(self) -> str:
        return f"r{self.round}/{self.stage}"

    @classmethod
    def from_label(cls, label: str) -> StageKey:
        """The key a :attr:`label` names (raises ValueError on anything else)."""
        round_part, _, stage = label.partition("/")
        if not round_part.startswith("r") or not round_part[1:].isdigit():
            raise ValueError(f"not a stage label: {label!r}")
        return cls(int(round_part[1:]), Stage(stage))


class _Strict(BaseModel):
    # Results come back from pods: NaN or infinity is a malformed result, never a figure.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Keyed(_Strict):
    """A config or result of one stage of one round (its subclasses declare ``stage``)."""

    round: int

    @property
    def key(self) -> StageKey:
        return StageKey(self.round, Stage(getattr(self, "stage")))


# --- configs -----------------------------------------------------------------------


class StageBase(_Keyed):
    evolution: str
    round: int = Field(ge=0)
    outputDir: str = Field(description="Directory this stage owns; artifacts and result.json go here.")
    seed: int = 0
    cacheDir: Optional[str] = Field(None, description="Cache for materialized embedded models.")
    prune: list[str] = Field(
        default_factory=list,
        description="Artifact folders of expired cycles to delete before the stage runs; only folders inside this evolution's own folder "
        "and outside the running cycle's are deleted (the operator sets it on a cycle's first stage, spec.retention.checkpoints).",
    )


class InitializeConfig(StageBase):
    stage: Literal[Stage.INITIALIZE] = Stage.INITIALIZE
    redTeam: ModelRef
    seeds: Optional[str] = None
    initialization: InitializationSpec
    training: TrainingSpec


class AttackConfig(StageBase):
    stage: Literal[Stage.ATTACK] = Stage.ATTACK
    target: ModelRef
    redTeam: ModelRef
    classifier: ClassifierSpec
    attack: AttackSpec
    seeds: Optional[str] = None


class PairsConfig(StageBase):
    stage: Literal[Stage.PAIRS] = Stage.PAIRS
    records: str
    pairs: PairsSpec
    maxPairs: Optional[int] = None
    helpful: Optional[str] = None


class TrainConfig(StageBase):
    stage: Literal[Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM]
    model: ModelRef
    pairsFile: str
    training: TrainingSpec


class EvaluateConfig(StageBase):
    stage: Literal[Stage.EVALUATE] = Stage.EVALUATE
    target: ModelRef
    redTeam: Optional[ModelRef] = None
    baselineTarget: ModelRef = Field(description="The fixed round-0 target the red team is measured against.")
    classifier: ClassifierSpec
    evaluation: EvaluationSpec
    attack: AttackSpec
    data: DataSpec
    previousRecords: Optional[str] = Field(None, description="Records of the previous round's evaluation: the regression test pairs with them.")
    baselineRecords: Optional[str] = Field(None, description="Records of round 0's evaluation: the accuracy change pairs with them.")


StageConfig = Union[InitializeConfig, AttackConfig, PairsConfig, TrainConfig, EvaluateConfig]
_CONFIG: TypeAdapter[StageConfig] = TypeAdapter(Annotated[StageConfig, Field(discriminator="stage")])


def parse_stage_config(text: str | bytes) -> StageConfig:
    """Parse a stage config from JSON text (raises pydantic.ValidationError)."""
    return _CONFIG.validate_json(text)


def dump_stage_config(config: StageConfig) -> dict:
    """A config as plain JSON data (what ``config.json`` and the Job's env hold)."""
    return config.model_dump(mode="json")


# --- results -----------------------------------------------------------------------


class JudgeInfo(_Strict):
    """Which judge produced a figure: per-category ASR is only comparable under the same judge."""

    type: str
    model: Optional[str] = None
    heuristic: bool = Field(False, description="True for a rule-based judge (no model): read its figures with its measured agreement.")


class VerdictCounts(_Strict):
    safe: int = Field(0, ge=0)
    unsafe: int = Field(0, ge=0)
    error: int = Field(0, ge=0)


class ResultBase(_Keyed):
    seconds: float = Field(0.0, ge=0)


class InitializeResult(ResultBase):
    stage: Literal[Stage.INITIALIZE] = Stage.INITIALIZE
    model: str
    examples: int = Field(ge=0)
    loss: Optional[float] = None


class AttackResult(ResultBase):
    stage: Literal[Stage.ATTACK] = Stage.ATTACK
    records: str
    prompts: int = Field(ge=0)
    responses: int = Field(ge=0)
    counts: VerdictCounts
    asr: Rate = Field(description="Unsafe answers over judged answers, with its interval.")
    judge: JudgeInfo
    goals: dict[str, int] = Field(default_factory=dict, description="Red-team prompts on goal, and those off it by reason (offGoal, gibberish, fallback).")


class PairsResult(ResultBase):
    stage: Literal[Stage.PAIRS] = Stage.PAIRS
    target: int = Field(ge=0)
    redteam: int = Field(ge=0)
    helpful: int = Field(0, ge=0)
    targetOwn: int = Field(0, description="Target pairs whose chosen answer is the target's own (the rest are refusal fallbacks).")
    targetFile: str
    redteamFile: str
    dropped: dict[str, int] = Field(default_factory=dict, description="What was left out, and why (e.g. redteamOffGoal, redteamFallback).")


class TrainResult(ResultBase):
    stage: Literal[Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM]
    model: str = Field(description="Model to use after this stage: the trained one, or the input when nothing was trained.")
    trained: bool
    pairs: int = Field(ge=0)
    loss: Optional[float] = None
    rewardAccuracy: Optional[float] = None
    rewardMargin: Optional[float] = None


class GenerationFigures(_Strict):
    """Knowledge asked in chat mode, as arXiv 2409.19476 measures it."""

    accuracy: Rate = Field(description="Answers that name the correct choice and no other (normalised match).")
    perplexity: Optional[float] = Field(None, ge=1, description="Perplexity of the generated answer tokens (geometric mean over questions).")
    entropy: Optional[float] = Field(None, ge=0, description="Mean entropy (nats) of the top-10 next-token distribution over the answers' tokens.")
    topProbability: Optional[float] = Field(None, ge=0, le=1, description="Mean probability of the most likely next token over the answers' tokens.")


class KnowledgeFigures(_Strict):
    """Knowledge scored cloze-style (each choice's log-likelihood), and asked in chat mode when measured."""

    accuracy: Rate
    accuracyNorm: Optional[Rate] = Field(None, description="acc_norm: the argmax of each choice's log-likelihood per character.")
    perplexity: float = Field(ge=1)
    entropy: float = Field(ge=0)
    probability: float = Field(ge=0, le=1)
    generation: Optional[GenerationFigures] = None


class EvaluateResult(ResultBase):
    """A round's figures. Every rate is k/n with its interval; errors of the judge are left out of ASRs (see judgeErrors)."""

    stage: Literal[Stage.EVALUATE] = Stage.EVALUATE
    directASR: Rate = Field(description="Direct set: plain harmful requests answered unsafely (greedy).")
    adversarialASR: Rate = Field(description="Adversarial set: templated held-out prompts answered unsafely (greedy).")
    sampledASR: Optional[Rate] = Field(None, description="Adversarial set, evaluation.samples answers per prompt at evaluation.sampleTemperature.")
    contrastRefusal: Rate = Field(description="Contrast set: benign requests in attack templates that were refused.")
    benignRefusal: Rate = Field(description="Benign-but-edgy prompts that were refused.")
    redteamASR: Optional[Rate] = Field(None, description="The red team's prompts answered unsafely by the fixed round-0 target.")
    judgeErrors: Rate = Field(description="Direct and adversarial answers the judge could not label.")
    byCategory: dict[str, Rate] = Field(default_factory=dict, description="Adversarial ASR per risk category.")
    byStyle: dict[str, Rate] = Field(default_factory=dict, description="Adversarial ASR per attack style.")
    knowledge: KnowledgeFigures
    knowledgeByContext: dict[str, KnowledgeFigures] = Field(default_factory=dict)
    regression: Optional[PairedChange] = Field(None, description="Unsafe answers on the direct and adversarial sets against the previous round, paired by prompt.")
    accuracyChange: Optional[PairedChange] = Field(None, description="Wrong QA answers against round 0, paired by question: its difference is the accuracy drop.")
    judge: JudgeInfo
    records: str


StageResult = Union[InitializeResult, AttackResult, PairsResult, TrainResult, EvaluateResult]
StageResultField = Annotated[StageResult, Field(discriminator="stage")]
_RESULT: TypeAdapter[StageResult] = TypeAdapter(StageResultField)


def parse_stage_result(text: str | bytes) -> StageResult:
    """Parse a stage result (raises pydantic.ValidationError on malformed input)."""
    return _RESULT.validate_json(text)


def dump_result(result: StageResult) -> str:
    """Serialize a result compactly; fails loudly if it outgrows a termination message."""
    text = result.model_dump_json(exclude_none=False)
    if len(text.encode()) > MAX_RESULT_BYTES:
        raise ValueError(f"stage result is {len(text.encode())} bytes, over the {MAX_RESULT_BYTES}-byte limit")
    return text
