"""The stage contract: JSON configs in, small JSON results out.

The control plane (``seas run``'s local executor and the operator's Jobs) writes
a stage config, runs ``seas-runtime <stage> --config FILE``, and reads back a
result small enough for a container termination message (4 KiB).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from seas_operator.api import (
    AttackSpec,
    ClassifierSpec,
    DataSpec,
    EvaluationSpec,
    InitializationSpec,
    ModelRef,
    PairsSpec,
    TrainingSpec,
)

MAX_RESULT_BYTES = 4096
STAGES = ("initialize", "attack", "pairs", "train-target", "train-redteam", "evaluate")
StageName = Literal["initialize", "attack", "pairs", "train-target", "train-redteam", "evaluate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageBase(_Strict):
    evolution: str
    round: int = Field(ge=0)
    outputDir: str = Field(description="Directory this stage owns; artifacts and result.json go here.")
    seed: int = 0
    cacheDir: Optional[str] = Field(None, description="Cache for materialized embedded models.")


class InitializeConfig(StageBase):
    stage: Literal["initialize"] = "initialize"
    redTeam: ModelRef
    seeds: Optional[str] = None
    initialization: InitializationSpec
    training: TrainingSpec


class AttackConfig(StageBase):
    stage: Literal["attack"] = "attack"
    target: ModelRef
    redTeam: ModelRef
    classifier: ClassifierSpec
    attack: AttackSpec
    seeds: Optional[str] = None


class PairsConfig(StageBase):
    stage: Literal["pairs"] = "pairs"
    records: str
    pairs: PairsSpec
    maxPairs: Optional[int] = None
    helpful: Optional[str] = None


class TrainConfig(StageBase):
    stage: Literal["train-target", "train-redteam"]
    model: ModelRef
    pairsFile: str
    training: TrainingSpec


class EvaluateConfig(StageBase):
    stage: Literal["evaluate"] = "evaluate"
    target: ModelRef
    redTeam: Optional[ModelRef] = None
    baselineTarget: ModelRef = Field(description="The fixed round-0 target the red team is measured against.")
    classifier: ClassifierSpec
    evaluation: EvaluationSpec
    attack: AttackSpec
    data: DataSpec


StageConfig = Annotated[
    Union[InitializeConfig, AttackConfig, PairsConfig, TrainConfig, EvaluateConfig], Field(discriminator="stage")
]
_CONFIG = TypeAdapter(StageConfig)


def parse_stage_config(text: str) -> InitializeConfig | AttackConfig | PairsConfig | TrainConfig | EvaluateConfig:
    """Parse a stage config from JSON text (raises pydantic.ValidationError)."""
    return _CONFIG.validate_json(text)


class JudgeInfo(_Strict):
    """Which judge produced a figure: per-category ASR is only comparable under the same judge."""

    type: str
    model: Optional[str] = None


class VerdictCounts(_Strict):
    safe: int = 0
    unsafe: int = 0
    error: int = 0


class ResultBase(_Strict):
    round: int
    seconds: float = 0.0


class InitializeResult(ResultBase):
    stage: Literal["initialize"] = "initialize"
    model: str
    examples: int
    loss: Optional[float] = None


class AttackResult(ResultBase):
    stage: Literal["attack"] = "attack"
    records: str
    prompts: int
    responses: int
    counts: VerdictCounts
    asr: Optional[float]
    judge: JudgeInfo


class PairsResult(ResultBase):
    stage: Literal["pairs"] = "pairs"
    target: int
    redteam: int
    helpful: int = 0
    targetFile: str
    redteamFile: str
    dropped: dict[str, int] = Field(default_factory=dict)


class TrainResult(ResultBase):
    stage: Literal["train-target", "train-redteam"]
    model: str = Field(description="Model to use after this stage: the trained one, or the input when nothing was trained.")
    trained: bool
    pairs: int
    loss: Optional[float] = None
    rewardAccuracy: Optional[float] = None
    rewardMargin: Optional[float] = None


class KnowledgeFigures(_Strict):
    accuracy: float
    perplexity: float
    entropy: float
    probability: float


class EvaluateResult(ResultBase):
    stage: Literal["evaluate"] = "evaluate"
    targetASR: Optional[float]
    targetCounts: VerdictCounts
    byCategory: dict[str, float] = Field(default_factory=dict)
    byStyle: dict[str, float] = Field(default_factory=dict)
    redteamASR: Optional[float] = None
    redteamCounts: Optional[VerdictCounts] = None
    benignRefusalRate: float
    judgeErrorRate: float
    knowledge: KnowledgeFigures
    knowledgeByContext: dict[str, KnowledgeFigures] = Field(default_factory=dict)
    judge: JudgeInfo
    records: str


StageResult = Annotated[
    Union[InitializeResult, AttackResult, PairsResult, TrainResult, EvaluateResult], Field(discriminator="stage")
]
_RESULT = TypeAdapter(StageResult)


def parse_stage_result(text: str | bytes) -> InitializeResult | AttackResult | PairsResult | TrainResult | EvaluateResult:
    """Parse a stage result (raises pydantic.ValidationError or ValueError on malformed input)."""
    return _RESULT.validate_json(text)


def dump_result(result: BaseModel) -> str:
    """Serialize a result compactly; fails loudly if it outgrows a termination message."""
    text = result.model_dump_json(exclude_none=False)
    if len(text.encode()) > MAX_RESULT_BYTES:
        raise ValueError(f"stage result is {len(text.encode())} bytes, over the {MAX_RESULT_BYTES}-byte limit")
    return text


def result_dict(result: BaseModel) -> dict:
    """A result as plain JSON-compatible data."""
    return json.loads(result.model_dump_json())
