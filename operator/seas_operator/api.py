"""The ``SafetyEvolution`` API (``seas.dev/v1alpha1``) as pydantic models.

These models are the single source of truth: ``seas run`` validates YAML with
them, ``seas crd`` generates the CRD's OpenAPI schema from them, and the
operator parses custom resources with them. The spec is composed of the
runtime's shared sections (``seas_runtime.settings``: models, classifier,
attack, training, pairs, initialization, evaluation, data) plus the fields only
the control plane reads (gates, schedule, storage, resources, retries, image).
Field names are camelCase, as in Kubernetes; unknown fields are rejected so
typos surface as errors.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seas_runtime.settings import AttackSpec, ClassifierSpec, DataSpec, EvaluationSpec, InitializationSpec, ModelRef, PairsSpec, Section, TrainingSpec

from .names import MAX_LABEL, longest_names

GROUP = "seas.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SafetyEvolution"
PLURAL = "safetyevolutions"
SINGULAR = "safetyevolution"
SHORT_NAME = "sevo"


class GatesSpec(Section):
    """Conditions a round must meet for its target to be promoted; each is decided on its interval (evaluation.confidence)."""

    maxTargetASR: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="Highest direct and adversarial ASR allowed: each interval's upper bound must be at most this."
    )
    maxBenignRefusalRate: Optional[float] = Field(None, ge=0.0, le=1.0, description="Highest benign refusal rate allowed (upper bound).")
    maxContrastRefusalRate: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="Highest refusal rate of benign requests in attack templates allowed (upper bound)."
    )
    maxAccuracyDrop: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="Largest QA accuracy drop versus round 0 allowed: the paired drop's upper bound must be at most this."
    )
    maxJudgeErrorRate: float = Field(0.1, ge=0.0, le=1.0, description="Highest share of answers the judge could not label (upper bound).")


class TimeoutsSpec(Section):
    """How long the operator waits before it fails an attempt itself."""

    startup: int = Field(
        900, ge=30, le=86400,
        description="Seconds a stage's pod may stay unable to start (ImagePullBackOff, CreateContainerConfigError, Unschedulable) "
        "before the attempt fails with that reason; the reason is reported at once.",
    )


class SecretKeyRef(Section):
    """A key in a Secret in the evolution's namespace."""

    name: str = Field(min_length=1, description="Secret name.")
    key: str = Field("token", min_length=1, description="Key in the Secret.")


class StorageSpec(Section):
    """Where artifacts (records, pairs, checkpoints, results) live."""

    pvc: Optional[str] = Field(None, description="PersistentVolumeClaim for artifacts; the operator default when unset.")
    mountPath: str = Field("/artifacts", pattern=r"^/", description="Mount path of the artifact volume in stage pods.")


class TolerationSpec(Section):
    """A pod toleration."""

    key: Optional[str] = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


class ResourcesSpec(Section):
    """Pod resources for stage Jobs."""

    gpus: int = Field(1, ge=0, le=64, description="GPUs per stage pod (nvidia.com/gpu).")
    cpu: str = Field("4", description="CPU request.")
    memory: str = Field("32Gi", description="Memory request and limit.")
    ephemeralStorage: str = Field("20Gi", description="Node-local disk request and limit (logs, temp files); the pod is evicted beyond it instead of filling the node.")
    shmSize: str = Field("8Gi", description="Size limit of the memory-backed /dev/shm of GPU pods (vLLM, NCCL); it counts against the memory limit.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Node selector for stage pods.")
    tolerations: list[TolerationSpec] = Field(default_factory=list, description="Tolerations for stage pods.")


class RetentionSpec(Section):
    """How many cycles of children and artifacts the operator keeps; older ones are deleted (the current cycle always stays)."""

    # At most 100: child names fold the cycle modulo names.CYCLE_LABELS (999 labels), so a kept child must be long gone
    # before its name comes round again.
    children: int = Field(
        2, ge=1, le=100,
        description="Cycles whose stage children (Jobs, PyTorchJobs, TrainJobs, with their pods and logs) are kept, the current one included; "
        "the operator deletes those of older cycles.",
    )
    checkpoints: int = Field(
        2, ge=1, le=100,
        description="Cycles whose artifact folders (records, pairs, checkpoints) are kept on the volume, the current one included; "
        "the first stage of a new cycle deletes older ones, except a folder holding the promoted model or the cycle's start model.",
    )


class SafetyEvolutionSpec(Section):
    """Desired state: which models to harden, how, for how many rounds, and when to re-check."""

    rounds: int = Field(ge=1, le=100, description="SEAS rounds per cycle (round 0, the baseline, is extra).")
    target: ModelRef = Field(description="The model to harden.")
    redTeam: ModelRef = Field(description="The adversarial prompt writer.")
    classifier: ClassifierSpec = Field(default_factory=ClassifierSpec, description="The safety judge.")
    attack: AttackSpec = Field(default_factory=AttackSpec, description="Attack sampling.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="DPO training.")
    pairs: PairsSpec = Field(default_factory=PairsSpec, description="Pair selection.")
    initialization: InitializationSpec = Field(default_factory=InitializationSpec, description="Red-team SFT before round 1.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Evaluation settings.")
    data: DataSpec = Field(default_factory=DataSpec, description="Data sets.")
    gates: GatesSpec = Field(default_factory=GatesSpec, description="Promotion gates.")
    seed: int = Field(0, ge=0, description="Random seed for sampling and training.")
    schedule: Optional[str] = Field(None, description="Cron expression: start a new cycle from the promoted model on schedule.")
    suspend: bool = Field(False, description="Pause: no new stages start while true.")
    retries: int = Field(2, ge=0, le=20, description="Retries of a failed stage before the evolution is Degraded.")
    image: Optional[str] = Field(None, description="Runtime image for stage Jobs; the operator default when unset.")
    hubTokenSecret: Optional[SecretKeyRef] = Field(None, description="Secret holding a Hugging Face token (env HF_TOKEN).")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="Artifact storage.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Stage pod resources.")
    activeDeadlineSeconds: int = Field(6 * 3600, ge=60, description="Deadline of each stage's child (the operator enforces it for every kind).")
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec, description="When the operator fails a stuck attempt.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec, description="How many cycles of children and artifacts are kept.")

    @model_validator(mode="after")
    def _workers_need_a_distributed_backend(self) -> "SafetyEvolutionSpec":
        if self.training.workers > 0 and self.training.backend == "job":
            raise ValueError("training.workers needs the pytorchjob or trainjob backend: a plain Job is one pod")
        return self

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        fields = value.split()
        if len(fields) != 5 and not value.startswith("@"):
            raise ValueError(f"schedule {value!r} is not a 5-field cron expression")
        try:
            from croniter import croniter
        except ImportError:  # validated again by the operator, which has croniter
            return value
        if not croniter.is_valid(value):
            raise ValueError(f"schedule {value!r} is not a valid cron expression")
        return value


_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 24


class ObjectMeta(BaseModel):
    """The parts of metadata the product relies on."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Evolution name; prefixes every child object.")
    namespace: Optional[str] = None

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        # Children are named <name>[-c<cycle>]-r<round>-<stage>[-retryN] (up to 31 more characters), and a
        # PyTorchJob's replicas add -worker-<i>: 24 keeps every derived name under the 63-character limit.
        if len(value) > MAX_NAME or not _DNS_LABEL.match(value):
            raise ValueError(f"must start with a letter and be a DNS label of at most {MAX_NAME} characters (lowercase letters, digits, '-')")
        return value


class SafetyEvolution(BaseModel):
    """A whole ``SafetyEvolution`` object as written in YAML."""

    model_config = ConfigDict(extra="ignore")

    apiVersion: Literal["seas.dev/v1alpha1"]
    kind: Literal["SafetyEvolution"]
    metadata: ObjectMeta
    spec: SafetyEvolutionSpec

    @model_validator(mode="before")
    @classmethod
    def _need_dict(cls, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError("a SafetyEvolution must be a YAML mapping")
        return value

    @model_validator(mode="after")
    def _names_fit(self) -> "SafetyEvolution":
        # Checked for the largest cycle, round, attempt and worker the spec allows, so no child name fails later.
        training = self.spec.training
        pytorchjob = training.backend in (None, "pytorchjob")
        for name in longest_names(self.metadata.name, self.spec.rounds, training.workers, pytorchjob):
            if len(name) > MAX_LABEL:
                raise ValueError(
                    f"metadata.name {self.metadata.name!r} is too long for spec.rounds={self.spec.rounds} "
                    f"and spec.training.workers={training.workers}: a child could be named {name!r} ({len(name)} > {MAX_LABEL} characters); "
                    "shorten the name or lower those"
                )
        return self
