"""The evolution's status as typed models: what the operator writes, the CRD's status schema, metrics and reports read.

``EvolutionStatus`` is parsed from the custom resource at the start of every
reconcile and dumped whole at the end (``dump_status``), so every field exists
once, here. ``RoundStatus`` is the one summary of an evaluated round: status,
Prometheus metrics, ``report.json``/``report.md``/``asr.png`` and the CLI all
read it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Collection, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from seas_runtime.contract import JudgeInfo, StageKey, StageResultField
from seas_runtime.stats import PairedChange, Rate


class _Status(BaseModel):
    # Status is read back from the API server: tolerate what an older or newer operator wrote.
    model_config = ConfigDict(extra="ignore")


class StageState(StrEnum):
    """Where one stage of a cycle stands."""

    RUNNING = "running"  # its child exists (or is being created)
    WAITING = "waiting"  # failed, a retry is due at retryAt
    SUCCEEDED = "succeeded"  # its result is recorded
    FAILED = "failed"  # failed beyond spec.retries; an edit of the spec retries it


class Phase(StrEnum):
    """One word for the whole evolution."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SAFETY_REGRESSED = "SafetyRegressed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Status):
    """A Kubernetes condition (API conventions)."""

    type: ConditionType = Field(description="Ready, Progressing, Degraded or SafetyRegressed.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field("", description="CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable detail.")
    lastTransitionTime: Optional[str] = Field(None, description="When the status last changed.", json_schema_extra={"format": "date-time"})
    observedGeneration: Optional[int] = Field(None, description="The metadata.generation the condition was computed for.",
                                              json_schema_extra={"format": "int64"})

    @property
    def is_true(self) -> bool:
        return self.status == ConditionStatus.TRUE


class StageEntry(_Status):
    """Bookkeeping of one stage: its child, attempts, failures, times and result."""

    state: StageState = Field(description="running, waiting (for a retry), succeeded or failed (beyond spec.retries).")
    child: str = Field("", description="Name of the child object of the latest attempt.")
    kind: str = Field("", description="Kind of that child: Job, PyTorchJob or TrainJob.")
    attempts: int = Field(0, description="Children launched for this stage.")
    failures: int = Field(0, description="Attempts that failed.")
    reason: str = Field("", description="Why the latest attempt failed.")
    startedAt: Optional[str] = Field(None, description="When the latest attempt started.", json_schema_extra={"format": "date-time"})
    finishedAt: Optional[str] = Field(None, description="When the latest attempt finished.", json_schema_extra={"format": "date-time"})
    retryAt: Optional[str] = Field(None, description="When the next attempt is due.", json_schema_extra={"format": "date-time"})
    result: Optional[StageResultField] = Field(
        None, description="The stage's result, as its container reported it; dropped once no later stage reads it (old rounds keep their figures in rounds[])."
    )


class PairCounts(_Status):
    target: int = Field(0, description="DPO pairs for the target.")
    targetOwn: int = Field(0, description="Target safety pairs whose chosen answer is the target's own (the others are opt-in refusal fallbacks).")
    helpful: int = Field(0, description="Target pairs against over-refusal (a helpful answer over a refusal), included in target.")
    redteam: int = Field(0, description="DPO pairs for the red team.")


class GateResult(_Status):
    passed: bool = Field(description="Whether the round met every gate.")
    failures: list[str] = Field(default_factory=list, description="Which gates failed, and by how much.")


class RoundStatus(_Status):
    """One evaluated round: its figures (every rate k/n with its interval), the judge that produced them, gate and changes."""

    round: int = Field(description="Round number; 0 is the baseline.")
    cycle: Optional[int] = Field(
        None, description="Mode evaluate: the cycle this evaluation belongs to (the last one's stays here while the next cycle runs)."
    )
    directASR: Optional[Rate] = Field(None, description="Direct set: plain harmful requests answered unsafely (lower is safer).")
    adversarialASR: Optional[Rate] = Field(None, description="Adversarial set: templated held-out prompts answered unsafely (lower is safer).")
    sampledASR: Optional[Rate] = Field(None, description="Adversarial set, answers sampled at evaluation.sampleTemperature.")
    contrastRefusalRate: Optional[Rate] = Field(None, description="Contrast set: benign requests in attack templates that were refused.")
    benignRefusalRate: Optional[Rate] = Field(None, description="Benign-but-edgy prompts that were refused (over-refusal).")
    redteamASR: Optional[Rate] = Field(None, description="The red team's prompts answered unsafely by the fixed round-0 target.")
    judgeErrorRate: Optional[Rate] = Field(None, description="Direct and adversarial answers the judge could not label.")
    attackASR: Optional[Rate] = Field(
        None, description="Mode evaluate with evaluateOnly.attack: the red team's attack prompts answered unsafely by the target (sampled answers)."
    )
    qaAccuracy: Optional[Rate] = Field(None, description="Knowledge QA accuracy.")
    qaPerplexity: Optional[float] = Field(None, description="Perplexity of the correct QA answers (geometric mean over questions).")
    qaEntropy: Optional[float] = Field(None, description="Mean entropy (nats) over the answer choices.")
    qaAnswerProbability: Optional[float] = Field(None, description="Mean probability of the correct answer.")
    qaAccuracyNorm: Optional[Rate] = Field(None, description="Knowledge QA acc_norm: the likeliest choice per character is correct.")
    qaGenerationAccuracy: Optional[Rate] = Field(None, description="Knowledge QA asked in chat mode: answers naming the correct choice.")
    qaGenerationPerplexity: Optional[float] = Field(None, description="Perplexity of the chat-mode answers' tokens (geometric mean).")
    qaGenerationEntropy: Optional[float] = Field(None, description="Mean top-10 entropy (nats) over the chat-mode answers' tokens.")
    qaGenerationTopProbability: Optional[float] = Field(None, description="Mean top-token probability over the chat-mode answers' tokens.")
    accuracyChange: Optional[PairedChange] = Field(
        None, description="Wrong QA answers against round 0, paired by question: difference is the accuracy drop, with its interval."
    )
    regression: Optional[PairedChange] = Field(
        None, description="Unsafe answers against the previous round (mode evaluate: the last cycle), paired by prompt: "
        "significant and worse means the round regressed."
    )
    byCategory: dict[str, Rate] = Field(default_factory=dict, description="Adversarial ASR per risk category.")
    byStyle: dict[str, Rate] = Field(default_factory=dict, description="Adversarial ASR per attack style.")
    pairs: PairCounts = Field(default_factory=PairCounts, description="DPO pairs the round trained on.")
    gate: Optional[GateResult] = Field(None, description="The gate result (rounds after the baseline).")
    judge: Optional[JudgeInfo] = Field(None, description="The judge that produced the figures.")
    seconds: Optional[float] = Field(None, description="Wall time of the round's stages.")
    targetModel: Optional[str] = Field(None, description="The target this round produced.")
    records: Optional[str] = Field(None, description="Evaluation records on the artifact volume.")

    @property
    def regressed(self) -> bool:
        """Whether the paired test says this round is significantly less safe than the one before."""
        return _worse(self.regression)


def _worse(change: Optional[PairedChange]) -> bool:
    return bool(change and change.significant and change.direction == "worse")


# The figures of a round an evaluate-only cycle keeps in status.history: the rates, paired changes, gate and judge
# (declared once, in RoundStatus), and the records the next cycle pairs with; not the per-category and per-style ASR.
CYCLE_FIGURES = ("directASR", "adversarialASR", "sampledASR", "contrastRefusalRate", "benignRefusalRate", "redteamASR", "attackASR",
                 "judgeErrorRate", "qaAccuracy", "accuracyChange", "regression", "gate", "judge", "records")


class _CycleFiguresBase(_Status):
    @property
    def regressed(self) -> bool:
        """Whether the paired test says this cycle is significantly less safe than the one before."""
        return _worse(getattr(self, "regression", None))


CycleFigures = create_model(  # type: ignore[call-overload]
    "CycleFigures", __base__=_CycleFiguresBase, __doc__="An evaluate-only cycle's figures: every rate k/n with its interval, its gate and paired changes.",
    **{name: (RoundStatus.model_fields[name].annotation, RoundStatus.model_fields[name]) for name in CYCLE_FIGURES},
)


class HistoryRound(_Status):
    round: int
    directASR: Optional[float] = None
    adversarialASR: Optional[float] = None


class HistoryEntry(_Status):
    """A finished cycle: kept when a scheduled re-check starts the next one (mode evaluate: as soon as the cycle finishes)."""

    cycle: int = Field(description="The cycle's number.")
    promotedModel: Optional[str] = Field(None, description="The model it promoted.")
    finishedAt: Optional[str] = Field(None, description="When its last stage finished.", json_schema_extra={"format": "date-time"})
    rounds: list[HistoryRound] = Field(default_factory=list, description="Target ASR per round.")
    model: Optional[str] = Field(None, description="Mode evaluate: the target model the cycle evaluated.")
    evaluation: Optional[CycleFigures] = Field(  # type: ignore[valid-type]
        None, description="Mode evaluate: the cycle's figures, every rate k/n with its interval, its gate and its paired change against "
        "the cycle before."
    )

    @property
    def regressed(self) -> bool:
        """Whether this cycle was significantly less safe than the one before (mode evaluate)."""
        return bool(self.evaluation and self.evaluation.regressed)


class EvolutionStatus(_Status):
    """Observed state, rebuilt from the child objects and their results on every reconcile."""

    observedGeneration: Optional[int] = Field(None, description="The metadata.generation this status describes.", json_schema_extra={"format": "int64"})
    phase: Optional[Phase] = Field(
        None,
        description="One word for the evolution: Pending (not started), Running, Suspended (spec.suspend), "
        "Succeeded (rounds done), Degraded (a stage failed beyond spec.retries) or Failed (the spec is invalid).",
    )
    message: Optional[str] = Field(None, description="Why the evolution is Degraded or Failed.")
    cycle: int = Field(0, description="Cycle number: 0 first, +1 for each scheduled re-check.")
    round: Optional[int] = Field(None, description="Round being worked on: 0 is the baseline evaluation, 1..spec.rounds are SEAS rounds.")
    stage: Optional[str] = Field(None, description="Stage being worked on: initialize, attack, pairs, train-target, train-redteam, evaluate, or Done.")
    directASR: Optional[float] = Field(None, description="Direct-set ASR of the latest evaluated round (its interval is in rounds[]).")
    adversarialASR: Optional[float] = Field(None, description="Adversarial-set ASR of the latest evaluated round (its interval is in rounds[]).")
    promotedModel: Optional[str] = Field(None, description="The target that passed its gates most recently, else the starting model: the model to deploy.")
    startModel: Optional[str] = Field(None, description="The target this cycle started from.")
    lastProgressTime: Optional[str] = Field(None, description="When a stage last started or finished.", json_schema_extra={"format": "date-time"})
    nextScheduleTime: Optional[str] = Field(None, description="When spec.schedule starts the next cycle.", json_schema_extra={"format": "date-time"})
    activeGeneration: Optional[int] = Field(
        None, description="The generation whose spec the running cycle follows (spec changes apply at round boundaries).", json_schema_extra={"format": "int64"}
    )
    activeSpec: Optional[dict[str, Any]] = Field(None, description="The spec the running stages follow.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded and SafetyRegressed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    rounds: list[RoundStatus] = Field(default_factory=list, description="One entry per evaluated round, round 0 first.")
    stages: dict[str, StageEntry] = Field(default_factory=dict, description="Per stage (r<round>/<stage>): child object, attempts, failures, times and result.")
    history: list[HistoryEntry] = Field(default_factory=list, description="Summaries of finished cycles.")

    def condition(self, type_: ConditionType) -> Optional[Condition]:
        """The condition of ``type_``, if set."""
        return next((c for c in self.conditions if c.type == type_), None)

    def done(self) -> dict[StageKey, Any]:
        """The stages that succeeded, by key, with their result: None where it was compacted away (:func:`compact_stages`).

        A compacted stage is still finished for the planner; its round's figures live on in ``rounds``.
        """
        return {StageKey.from_label(label): e.result for label, e in self.stages.items() if e.state == StageState.SUCCEEDED}


def compact_stages(stages: dict[str, StageEntry], keep_rounds: Collection[int]) -> dict[str, StageEntry]:
    """The stages with the results of succeeded stages outside ``keep_rounds`` dropped; state, child, attempts and times stay.

    A result is up to 4 KiB and a cycle has up to 100 rounds of five stages: kept whole they would outgrow the
    object limit of etcd (1.5 MB). Only the rounds later stages read from (``planner.rounds_in_use``) need them.
    """
    out = dict(stages)
    for label, entry in stages.items():
        if entry.result is not None and entry.state == StageState.SUCCEEDED and StageKey.from_label(label).round not in keep_rounds:
            out[label] = entry.model_copy(update=dict(result=None))
    return out


def parse_status(data: Optional[dict[str, Any]]) -> EvolutionStatus:
    """The status stored on the object (kopf's own bookkeeping under ``kopf`` is not ours)."""
    return EvolutionStatus.model_validate({k: v for k, v in (data or {}).items() if k != "kopf"})


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def dump_status(status: EvolutionStatus) -> dict[str, Any]:
    """The status as written to the API, with no null anywhere (the free-form activeSpec and stage results included).

    In a merge patch a null deletes the key, so a null written is never stored: the next reconcile would send it
    again, and a steady state would PATCH forever. Unset and absent mean the same to every reader.
    """
    return _without_nulls(status.model_dump(mode="json", exclude_none=True))
