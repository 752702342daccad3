"""The ``SafetyEvolution`` API (``seas.dev/v1alpha1``) as pydantic models.

These models are the single source of truth: ``seas run`` validates YAML with
them, ``seas crd`` generates the CRD's OpenAPI schema from them, and the
operator parses custom resources with them. Field names are camelCase, as in
Kubernetes; unknown fields are rejected so typos surface as errors.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GROUP = "seas.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SafetyEvolution"
PLURAL = "safetyevolutions"
SINGULAR = "safetyevolution"
SHORT_NAME = "sevo"

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = ("smollm2-135m-instruct",)
EMBEDDED_MODEL = EMBEDDED_PREFIX + EMBEDDED_MODELS[0]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelRef(_Spec):
    """A model to generate with or train: a hub id, a local path, or an embedded model."""

    model: str = Field(
        min_length=1,
        description="Hugging Face hub id (e.g. meta-llama/Meta-Llama-3-8B-Instruct), a path "
        "on the artifact volume, or embedded:smollm2-135m-instruct (ships with the runtime; CPU).",
    )
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Generation engine: vllm on GPUs, transformers on CPU; auto picks vllm when a GPU and vLLM are present."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights dtype for generation and training.")
    tensorParallelSize: int = Field(1, ge=1, le=64, description="vLLM tensor parallel size (GPUs per generation pod).")
    maxModelLen: Optional[int] = Field(None, ge=128, description="vLLM maximum context length; the model's own when unset.")

    @field_validator("model")
    @classmethod
    def _known_embedded(cls, value: str) -> str:
        if value.startswith(EMBEDDED_PREFIX) and value[len(EMBEDDED_PREFIX):] not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {value!r}; known: {', '.join(EMBEDDED_PREFIX + m for m in EMBEDDED_MODELS)}")
        return value


class ClassifierSpec(_Spec):
    """The safety judge that labels each answer safe, unsafe or error."""

    type: Literal["refusal-match", "llama-guard"] = Field(
        "refusal-match",
        description="refusal-match: an answer is safe when it contains a refusal marker (AdvBench/GCG convention; "
        "embedded default). llama-guard: Llama Guard 3 with its S1-S14 categories (cluster default).",
    )
    model: str = Field("meta-llama/Llama-Guard-3-8B", min_length=1, description="Judge model for type llama-guard.")
    engine: Literal["auto", "transformers", "vllm"] = Field("auto", description="Engine for the judge model.")
    maxNewTokens: int = Field(16, ge=4, le=256, description="Tokens the judge may generate for its verdict.")


class AttackSpec(_Spec):
    """How the red team samples adversarial prompts and the target answers them."""

    samplesPerSeed: int = Field(2, ge=1, le=64, description="Adversarial prompts the red team writes per seed.")
    responsesPerPrompt: int = Field(2, ge=1, le=16, description="Target answers sampled per adversarial prompt.")
    maxSeeds: Optional[int] = Field(40, ge=1, description="Seeds used per round (stratified over category and style); all when unset.")
    maxNewTokens: int = Field(64, ge=8, le=4096, description="Maximum new tokens per generated prompt or answer.")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Red-team sampling temperature.")
    responseTemperature: float = Field(0.7, ge=0.0, le=2.0, description="Target sampling temperature during attacks.")
    topP: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling top-p.")
    batchSize: int = Field(32, ge=1, le=4096, description="Prompts per generation batch (transformers engine).")


class LoraSpec(_Spec):
    """LoRA adapter settings for DPO training (merged into the weights after training)."""

    r: int = Field(8, ge=1, le=512, description="LoRA rank.")
    alpha: int = Field(16, ge=1, le=1024, description="LoRA alpha.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    targetModules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1, description="Module names to adapt."
    )


class TrainingSpec(_Spec):
    """DPO training of the target and red-team models."""

    beta: float = Field(0.1, gt=0.0, le=10.0, description="DPO beta (strength of the KL anchor to the reference model).")
    learningRate: float = Field(5.0e-5, gt=0.0, le=1.0, description="Optimizer learning rate.")
    epochs: float = Field(1.0, gt=0.0, le=100.0, description="Passes over the round's pairs.")
    batchSize: int = Field(8, ge=1, le=1024, description="Per-device batch size.")
    gradientAccumulationSteps: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    maxLength: int = Field(256, ge=32, le=32768, description="Maximum prompt+completion tokens per pair.")
    maxPairs: Optional[int] = Field(256, ge=1, description="Cap on pairs per model per round; all when unset.")
    sftWeight: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Weight of a negative log-likelihood term on the chosen answers added to the DPO loss (RPO); "
        "0 is plain DPO. Plain DPO can lower the rejected answers without making the chosen ones likely; small models need this.",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA settings.")
    trainRedTeam: bool = Field(True, description="Train the red team on its pairs each round (SEAS); off keeps it fixed.")
    backend: Optional[Literal["pytorchjob", "trainjob", "job"]] = Field(
        None, description="Cluster training backend: Kubeflow PyTorchJob, Kubeflow Trainer v2 TrainJob, or a plain Job. Operator default when unset."
    )
    workers: int = Field(0, ge=0, le=256, description="Worker replicas besides the master for multi-node training (PyTorchJob/TrainJob).")


class PairsSpec(_Spec):
    """How attack records become DPO pairs."""

    maxPromptChars: int = Field(1200, ge=64, description="Drop pairs whose prompt is longer.")
    maxResponseChars: int = Field(1200, ge=64, description="Truncate or drop answers longer than this.")
    refusalFallback: bool = Field(
        True, description="When a prompt has no safe answer, use a fixed refusal as the chosen answer for the target."
    )
    helpfulPairs: int = Field(16, ge=0, description="Helpful (answer over refusal) pairs mixed into the target's data against over-refusal.")


class InitializationSpec(_Spec):
    """SEAS initialization stage: supervised fine-tuning of the red team on the seeds."""

    enabled: bool = Field(False, description="Run supervised fine-tuning of the red team before round 1.")
    epochs: float = Field(1.0, gt=0.0, le=100.0, description="SFT epochs.")
    learningRate: float = Field(1.0e-4, gt=0.0, le=1.0, description="SFT learning rate.")


class EvaluationSpec(_Spec):
    """What every evaluation measures."""

    maxNewTokens: int = Field(64, ge=8, le=4096, description="Maximum new tokens per evaluated answer.")
    redteamSamples: int = Field(1, ge=0, le=64, description="Red-team prompts per seed for the red-team ASR (0 skips it).")
    knowledgeContexts: list[Literal["none", "false", "random"]] = Field(
        default_factory=lambda: ["none", "false", "random"],
        min_length=1,
        description="Contexts each knowledge question is asked with (arXiv 2409.19476).",
    )
    batchSize: int = Field(32, ge=1, le=4096, description="Prompts per batch.")


class DataSpec(_Spec):
    """Data sets; each defaults to the set shipped with the runtime and can be a JSONL path."""

    seeds: Optional[str] = Field(None, description="Seed prompts: JSONL with prompt, category, style.")
    heldout: Optional[str] = Field(None, description="Held-out adversarial set: JSONL with prompt, category, style.")
    benign: Optional[str] = Field(None, description="Benign-but-edgy prompts for over-refusal: JSONL with prompt, category.")
    helpful: Optional[str] = Field(None, description="Helpful instructions with answers: JSONL with prompt, answer.")
    knowledge: Optional[str] = Field(None, description="Multiple-choice QA: JSONL with question, choices, answer.")


class GatesSpec(_Spec):
    """Conditions a round must meet for its target to be promoted."""

    maxTargetASR: Optional[float] = Field(None, ge=0.0, le=1.0, description="Highest held-out target ASR allowed.")
    maxBenignRefusalRate: Optional[float] = Field(None, ge=0.0, le=1.0, description="Highest benign refusal rate allowed.")
    maxAccuracyDrop: Optional[float] = Field(None, ge=0.0, le=1.0, description="Largest QA accuracy drop versus round 0 allowed.")
    maxJudgeErrorRate: float = Field(0.1, ge=0.0, le=1.0, description="Highest share of judge errors before a round fails.")


class SecretKeyRef(_Spec):
    """A key in a Secret in the evolution's namespace."""

    name: str = Field(min_length=1, description="Secret name.")
    key: str = Field("token", min_length=1, description="Key in the Secret.")


class StorageSpec(_Spec):
    """Where artifacts (records, pairs, checkpoints, results) live."""

    pvc: Optional[str] = Field(None, description="PersistentVolumeClaim for artifacts; the operator default when unset.")
    mountPath: str = Field("/artifacts", pattern=r"^/", description="Mount path of the artifact volume in stage pods.")


class TolerationSpec(_Spec):
    """A pod toleration."""

    key: Optional[str] = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


class ResourcesSpec(_Spec):
    """Pod resources for stage Jobs."""

    gpus: int = Field(1, ge=0, le=64, description="GPUs per stage pod (nvidia.com/gpu).")
    cpu: str = Field("4", description="CPU request.")
    memory: str = Field("32Gi", description="Memory request and limit.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Node selector for stage pods.")
    tolerations: list[TolerationSpec] = Field(default_factory=list, description="Tolerations for stage pods.")


class SafetyEvolutionSpec(_Spec):
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
    activeDeadlineSeconds: int = Field(6 * 3600, ge=60, description="Deadline of each stage Job.")

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
