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
from enum import StrEnum
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from seas_runtime.settings import (AttackSpec, ClassifierSpec, DataSpec, EvaluationSpec, InitializationSpec, ModelRef, PairsSpec, SecretRef, Section,
                                   TrainingSpec)

from .names import MAX_LABEL, longest_names
from .pod_template import DEFAULT_GPU_RESOURCE, PodTemplateSpec, TolerationSpec, extended_resource_problem

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


class ResourcesSpec(Section):
    """Pod resources for stage Jobs."""

    gpus: int = Field(1, ge=0, le=64, description="GPUs per stage pod (of gpuResource).")
    gpuResource: str = Field(
        DEFAULT_GPU_RESOURCE, description="Extended resource name of a GPU, e.g. nvidia.com/gpu, nvidia.com/mig-1g.10gb, amd.com/gpu."
    )
    cpu: str = Field("4", description="CPU request.")
    memory: str = Field("32Gi", description="Memory request and limit.")
    ephemeralStorage: str = Field("20Gi", description="Node-local disk request and limit (logs, temp files); the pod is evicted beyond it instead of filling the node.")
    shmSize: str = Field("8Gi", description="Size limit of the memory-backed /dev/shm of GPU pods (vLLM, NCCL); it counts against the memory limit.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Deprecated: use spec.pod.nodeSelector (merged with it; spec.pod wins a key).")
    tolerations: list[TolerationSpec] = Field(default_factory=list, description="Deprecated: use spec.pod.tolerations (both are applied).")

    @field_validator("gpuResource")
    @classmethod
    def _extended_resource(cls, value: str) -> str:
        problem = extended_resource_problem(value)
        if problem:
            raise ValueError(problem)
        return value


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
    history: int = Field(
        10, ge=1, le=100,
        description="Finished cycles summarised in status.history, the newest kept (mode evaluate: one entry per re-check, "
        "each figure k/n with its interval).",
    )


class EvolutionMode(StrEnum):
    """What a cycle does."""

    TRAIN = "train"  # SEAS: baseline evaluation, then rounds of attack, pairs, training and evaluation
    EVALUATE = "evaluate"  # re-check: evaluate the given target (and attack it, when asked), nothing trained


# Sections and fields that only a training cycle reads: accepted in mode evaluate (so a training spec can be switched
# over by changing one field) but ignored, and named in a SettingsIgnored Event and by `seas validate`.
TRAINING_ONLY = ("rounds", "training", "pairs", "initialization")


class EvaluateOnlySpec(Section):
    """What an evaluate-only cycle (spec.mode: evaluate) runs besides the evaluation."""

    attack: bool = Field(
        False,
        description="Also run the attack stage: the red team writes adversarial prompts from the seeds (spec.attack) and the target "
        "answers them; its ASR k/n is kept in status.rounds[].attackASR and status.history. Off: only the evaluation runs.",
    )


class SafetyEvolutionSpec(Section):
    """Desired state: which models to harden, how, for how many rounds, and when to re-check."""

    mode: EvolutionMode = Field(
        EvolutionMode.TRAIN,
        description="train: SEAS rounds that harden the target. evaluate: each cycle only evaluates spec.target.model as it is "
        "(plus the attack stage when spec.evaluateOnly.attack), on spec.schedule or once without one; regression is tested against "
        "the last cycle. rounds, training, pairs and initialization are ignored in mode evaluate.",
    )
    # Not required by the schema: mode evaluate needs no rounds (the validator below asks for them in mode train).
    rounds: int = Field(
        None, ge=1, le=100, validate_default=True,  # type: ignore[arg-type]
        description="SEAS rounds per cycle (round 0, the baseline, is extra); required in mode train, ignored in mode evaluate.",
    )
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
    schedule: Optional[str] = Field(
        None, description="Cron expression: start a new cycle from the promoted model on schedule (mode evaluate: re-check spec.target.model)."
    )
    evaluateOnly: EvaluateOnlySpec = Field(default_factory=EvaluateOnlySpec, description="Mode evaluate: what a cycle runs besides the evaluation.")
    suspend: bool = Field(False, description="Pause: no new stages start while true.")
    retries: int = Field(2, ge=0, le=20, description="Retries of a failed stage before the evolution is Degraded.")
    image: Optional[str] = Field(None, description="Runtime image for stage Jobs; the operator default when unset.")
    hubTokenSecret: Optional[SecretKeyRef] = Field(None, description="Secret holding a Hugging Face token (env HF_TOKEN).")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="Artifact storage.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Stage pod resources.")
    pod: PodTemplateSpec = Field(
        default_factory=PodTemplateSpec,
        description="Stage pod template (service account, pull secrets, labels, scheduling, env); merged over the operator's defaults.",
    )
    activeDeadlineSeconds: int = Field(6 * 3600, ge=60, description="Deadline of each stage's child (the operator enforces it for every kind).")
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec, description="When the operator fails a stuck attempt.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec, description="How many cycles of children and artifacts are kept.")

    @field_validator("rounds", mode="before")
    @classmethod
    def _rounds_in_train_mode(cls, value: object, info: ValidationInfo) -> object:
        if value is not None:
            return value
        if info.data.get("mode", EvolutionMode.EVALUATE) == EvolutionMode.EVALUATE:  # no mode (it was invalid): that error suffices
            return 1  # one evaluation per cycle; nothing reads it
        raise PydanticCustomError("missing", "Field required")

    @property
    def evaluate_only(self) -> bool:
        """Whether a cycle only evaluates (spec.mode: evaluate)."""
        return self.mode == EvolutionMode.EVALUATE

    def ignored_settings(self) -> list[str]:
        """The fields the user set that this mode ignores, as ``spec.<field>`` (only meaningful on a spec validated from user input)."""
        ignored = TRAINING_ONLY if self.evaluate_only else ("evaluateOnly",)
        return [f"spec.{name}" for name in ignored if name in self.model_fields_set]

    @model_validator(mode="after")
    def _workers_need_a_distributed_backend(self) -> "SafetyEvolutionSpec":
        if self.training.workers > 0 and self.training.backend == "job" and not self.evaluate_only:
            raise ValueError("training.workers needs the pytorchjob or trainjob backend: a plain Job is one pod")
        return self

    @model_validator(mode="after")
    def _served_models_are_not_trained(self) -> "SafetyEvolutionSpec":
        evaluating = self.evaluate_only
        if self.target.endpoint is not None and not evaluating:
            raise PydanticCustomError("served_model_trained", "spec.target.endpoint: a served model cannot be trained; "
                                      "use spec.mode: evaluate or an in-process model (spec.target.model)")
        redteam_trained = self.training.trainRedTeam or self.initialization.enabled
        if self.redTeam.endpoint is not None and not evaluating and redteam_trained:
            raise PydanticCustomError("served_model_trained", "spec.redTeam.endpoint: a served model cannot be trained; set spec.training.trainRedTeam: false "
                                      "(and leave spec.initialization.enabled off), use spec.mode: evaluate, or an in-process model (spec.redTeam.model)")
        secrets: dict[str, tuple[str, str]] = {}
        for env, secret in endpoint_key_secrets(self):
            if secrets.setdefault(env, (secret.name, secret.key)) != (secret.name, secret.key):
                raise PydanticCustomError("api_key_env_clash", f"two endpoint API key Secrets map to the environment variable {env}; "
                                          "set endpoint.apiKeyEnv on one of them")
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


def endpoint_key_secrets(spec: SafetyEvolutionSpec) -> list[tuple[str, SecretRef]]:
    """(environment variable, Secret key) for each served model's API key: the operator sets each in stage pods."""
    endpoints = [spec.target.endpoint, spec.redTeam.endpoint, spec.classifier.endpoint]
    return [(e.api_key_env(), e.apiKeySecret) for e in endpoints if e is not None and e.apiKeySecret is not None]


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
        pytorchjob = training.backend in (None, "pytorchjob") and not self.spec.evaluate_only  # mode evaluate trains nothing
        for name in longest_names(self.metadata.name, self.spec.rounds, training.workers, pytorchjob):
            if len(name) > MAX_LABEL:
                raise ValueError(
                    f"metadata.name {self.metadata.name!r} is too long for spec.rounds={self.spec.rounds} "
                    f"and spec.training.workers={training.workers}: a child could be named {name!r} ({len(name)} > {MAX_LABEL} characters); "
                    "shorten the name or lower those"
                )
        return self
