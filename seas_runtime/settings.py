"""The torch-free settings both planes share: model references and the spec sections a stage reads.

The operator composes its ``SafetyEvolution`` spec from these (``seas_operator.api``)
and the stage contract (``contract``) carries them to the stages, so a field is
declared once. Field names are camelCase, as in Kubernetes; unknown fields are
rejected so typos surface as errors.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = ("smollm2-135m-instruct",)
EMBEDDED_MODEL = EMBEDDED_PREFIX + EMBEDDED_MODELS[0]


class Section(BaseModel):
    """A spec section: strict (unknown fields are errors), camelCase field names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


DEFAULT_API_KEY_ENV = "SEAS_ENDPOINT_API_KEY"


class SecretRef(Section):
    """A key of a Secret in the evolution's namespace; the operator passes its value to stage pods as an environment variable."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field("apiKey", min_length=1, max_length=253, description="Key in the Secret.")


class EndpointSpec(Section):
    """A model served behind an OpenAI-compatible API (vLLM, KServe, TGI): used over HTTP, never loaded or trained here."""

    url: str = Field(
        pattern=r"^https?://\S+$",
        description="Base URL of the API, e.g. http://llama-guard.models.svc:8000/v1; chat goes to {url}/chat/completions, "
        "raw completions and prompt log-probabilities to {url}/completions.",
    )
    model: str = Field(min_length=1, description="The model name the server serves (the request's model field).")
    apiKeySecret: Optional[SecretRef] = Field(
        None, description="Secret holding the API key, sent as a Bearer token; the operator sets it as an environment variable in stage pods.",
    )
    apiKeyEnv: Optional[str] = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=f"Environment variable holding the API key (seas run reads it from your shell). Default: one derived from "
        f"apiKeySecret (SEAS_API_KEY_<NAME>_<KEY>), else {DEFAULT_API_KEY_ENV}; {DEFAULT_API_KEY_ENV} is also read when the first is unset.",
    )
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    timeoutSeconds: float = Field(120.0, gt=0.0, le=3600.0, description="Timeout of one request.")
    maxRetries: int = Field(
        5, ge=0, le=20, description="Retries of a request after HTTP 429, a 5xx, a timeout or a connection error, with exponential backoff "
        "(Retry-After honoured).",
    )

    @field_validator("apiKeyEnv")
    @classmethod
    def _not_a_reserved_variable(cls, value: Optional[str]) -> Optional[str]:
        # The stage pod's own variables (its config, cache, hub token) must never be read as, or replaced by, a key.
        ours = value is not None and (value in ("HF_TOKEN", "HF_HOME") or value.startswith("SEAS_"))
        if ours and value != DEFAULT_API_KEY_ENV and not value.startswith("SEAS_API_KEY_"):
            raise ValueError(f"{value} is reserved for the stage pod; use {DEFAULT_API_KEY_ENV}, SEAS_API_KEY_<NAME> or a name of your own")
        return value

    def api_key_env(self) -> str:
        """The environment variable the runtime reads the key from, and the operator sets from ``apiKeySecret``."""
        if self.apiKeyEnv:
            return self.apiKeyEnv
        if self.apiKeySecret is not None:
            return "SEAS_API_KEY_" + re.sub(r"[^A-Z0-9]+", "_", f"{self.apiKeySecret.name}_{self.apiKeySecret.key}".upper())
        return DEFAULT_API_KEY_ENV


class ModelRef(Section):
    """A model to generate with or train: a hub id, a local path, an embedded model, or a served model (``endpoint``)."""

    model: Optional[str] = Field(
        None,
        min_length=1,
        description="Hugging Face hub id (e.g. meta-llama/Meta-Llama-3-8B-Instruct), a path "
        "on the artifact volume, or embedded:smollm2-135m-instruct (ships with the runtime; CPU). Set this or endpoint.",
    )
    endpoint: Optional[EndpointSpec] = Field(
        None, description="A served model (OpenAI-compatible API) instead of an in-process one; it can be evaluated and attack, never trained.",
    )
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Generation engine: vllm on GPUs, transformers on CPU; auto picks vllm when a GPU and vLLM are present."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights dtype for generation and training.")
    tensorParallelSize: int = Field(1, ge=1, le=64, description="vLLM tensor parallel size (GPUs per generation pod).")
    maxModelLen: Optional[int] = Field(None, ge=128, description="vLLM maximum context length; the model's own when unset.")
    gpuMemoryUtilization: float = Field(
        0.85, gt=0.1, le=0.98, description="vLLM: share of GPU memory the engine may take (weights, activations and KV cache)."
    )

    @field_validator("model")
    @classmethod
    def _known_embedded(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value.startswith(EMBEDDED_PREFIX) and value[len(EMBEDDED_PREFIX):] not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {value!r}; known: {', '.join(EMBEDDED_PREFIX + m for m in EMBEDDED_MODELS)}")
        return value

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> "ModelRef":
        if (self.model is None) == (self.endpoint is None):
            raise PydanticCustomError("model_or_endpoint", "set exactly one of model (an in-process model) or endpoint (a served model)")
        return self

    @property
    def label(self) -> str:
        """What to call this model in logs and reports: the model, or the served model and where it is served."""
        return f"{self.endpoint.model} at {self.endpoint.url}" if self.endpoint is not None else str(self.model)


JUDGE_MODELS = {"llama-guard": "meta-llama/Llama-Guard-3-8B", "harmbench": "cais/HarmBench-Mistral-7b-val-cls"}


class ClassifierSpec(Section):
    """The safety judge that labels each answer safe, unsafe or error."""

    type: Literal["refusal-match", "llama-guard", "harmbench"] = Field(
        "refusal-match",
        description="refusal-match: a heuristic without a model, safe only when the answer opens by declining and does not go on "
        "to comply (embedded default). llama-guard: Llama Guard with its own chat template and categories (cluster default). "
        "harmbench: HarmBench's behaviour classifier, which judges the answer against the request.",
    )
    model: Optional[str] = Field(
        None, min_length=1,
        description="Judge model for llama-guard and harmbench; default meta-llama/Llama-Guard-3-8B and cais/HarmBench-Mistral-7b-val-cls.",
    )
    engine: Literal["auto", "transformers", "vllm"] = Field("auto", description="Engine for the judge model.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights dtype of the judge model.")
    maxNewTokens: int = Field(16, ge=1, le=256, description="Tokens the judge may generate for its verdict.")
    excludedCategories: list[str] = Field(
        default_factory=list, description="Llama Guard category codes (e.g. S6) the judge must not flag; passed to the model's chat template "
        "(to a served judge as chat_template_kwargs, which vLLM honours).",
    )
    endpoint: Optional[EndpointSpec] = Field(
        None, description="A served judge model (OpenAI-compatible API) instead of an in-process one, for llama-guard and harmbench; "
        "set this or model, not both.",
    )

    @model_validator(mode="after")
    def _endpoint_needs_a_model_judge(self) -> "ClassifierSpec":
        if self.endpoint is not None and self.type == "refusal-match":
            raise PydanticCustomError("endpoint_needs_a_model_judge", "endpoint: refusal-match runs no model; use type llama-guard or harmbench with a served judge")
        if self.endpoint is not None and self.model is not None:
            raise PydanticCustomError("model_or_endpoint", "set model (an in-process judge) or endpoint (a served judge), not both")
        return self

    @property
    def judge_model(self) -> Optional[str]:
        """The model this judge runs (None for refusal-match); a served judge's served model name."""
        if self.endpoint is not None:
            return self.endpoint.model
        return self.model or JUDGE_MODELS.get(self.type)

    def judge_ref(self) -> Optional[ModelRef]:
        """The judge model as a model reference (None for refusal-match)."""
        if self.type == "refusal-match":
            return None
        if self.endpoint is not None:
            return ModelRef(endpoint=self.endpoint)
        return ModelRef(model=self.judge_model, engine=self.engine, dtype=self.dtype)


class AttackSpec(Section):
    """How the red team samples adversarial prompts and the target answers them."""

    samplesPerSeed: int = Field(2, ge=1, le=64, description="Adversarial prompts the red team writes per seed.")
    responsesPerPrompt: int = Field(
        4, ge=1, le=16,
        description="Target answers sampled per adversarial prompt (at responseTemperature): the target's DPO pairs are its own safe "
        "answer over its own unsafe answer to the same prompt, so it needs several.",
    )
    maxSeeds: Optional[int] = Field(40, ge=1, description="Seeds used per round (stratified over category and style); all when unset.")
    maxNewTokens: int = Field(64, ge=8, le=4096, description="Maximum new tokens per generated prompt or answer.")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Red-team sampling temperature.")
    responseTemperature: float = Field(0.7, ge=0.0, le=2.0, description="Target sampling temperature during attacks.")
    topP: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling top-p.")
    batchSize: int = Field(32, ge=1, le=4096, description="Prompts per generation batch (transformers engine).")
    onGoalCheck: bool = Field(
        True, description="A red-team prompt succeeds only if it still asks for its seed's harmful goal (judged by the classifier "
        "where it can tell, else by words naming the goal and a perplexity bound against gibberish); only successes are chosen in DPO. "
        "The seed itself (copied, or put in when the red team wrote nothing) never succeeds, whatever this setting.",
    )
    minGoalWords: int = Field(1, ge=1, le=10, description="Words naming the seed's goal or its category a red-team prompt needs to be on-goal.")
    maxPromptPerplexity: Optional[float] = Field(
        2000.0, gt=1.0, description="Red-team prompts with a higher perplexity under the target count as gibberish (unset: no bound).",
    )


class LoraSpec(Section):
    """LoRA adapter settings for DPO training (merged into the weights after training)."""

    r: int = Field(8, ge=1, le=512, description="LoRA rank.")
    alpha: int = Field(16, ge=1, le=1024, description="LoRA alpha.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    targetModules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1, description="Module names to adapt."
    )


class TrainingMethod(str, Enum):
    """Which weights training changes: a LoRA adapter (merged afterwards), or all of them (SEAS's own setup)."""

    LORA = "lora"
    FULL = "full"


# An adapter learns at a rate that would wreck the full weights; 5e-6 is the rate SEAS fine-tuned with.
DEFAULT_LEARNING_RATES = {TrainingMethod.LORA: 5.0e-5, TrainingMethod.FULL: 5.0e-6}


class ModelTrainingSpec(Section):
    """How one model (target or red team) learns from its pairs."""

    learningRate: Optional[float] = Field(
        None, gt=0.0, le=1.0,
        description="Optimizer learning rate; unset: 5e-5 with training.method lora, 5e-6 with full (the rate SEAS fine-tuned with).",
    )
    epochs: float = Field(1.0, gt=0.0, le=100.0, description="Passes over the round's pairs.")
    sftWeight: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Weight of a negative log-likelihood term on the chosen answers added to the DPO loss (RPO); "
        "0 is plain DPO. Plain DPO can lower the rejected answers without making the chosen ones likely; small models may need it.",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA settings.")


class TrainingSpec(Section):
    """DPO training: what both models share, and a section for each (the red team is not pushed by the target's settings)."""

    method: TrainingMethod = Field(
        TrainingMethod.LORA,
        description="lora: train a LoRA adapter and merge it (one GPU, DDP when several). full: fine-tune every weight "
        "(as SEAS did; FSDP full shard when several processes), learning rate 5e-6 by default.",
    )
    beta: float = Field(0.1, gt=0.0, le=10.0, description="DPO beta (strength of the KL anchor to the reference model).")
    batchSize: int = Field(
        8, ge=1, le=1024,
        description="Pairs per forward pass of one process. An optimizer step takes batchSize x gradientAccumulationSteps pairs "
        "whatever the number of training processes: under torchrun they are split over the processes.",
    )
    gradientAccumulationSteps: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    maxLength: int = Field(256, ge=32, le=32768, description="Maximum prompt+completion tokens per pair.")
    maxPairs: Optional[int] = Field(256, ge=1, description="Cap on pairs per model per round; all when unset.")
    target: ModelTrainingSpec = Field(default_factory=ModelTrainingSpec, description="How the target learns from its pairs.")
    redTeam: ModelTrainingSpec = Field(default_factory=ModelTrainingSpec, description="How the red team learns from its pairs.")
    trainRedTeam: bool = Field(True, description="Train the red team on its pairs each round (SEAS); off keeps it fixed.")
    backend: Optional[Literal["pytorchjob", "trainjob", "job"]] = Field(
        None, description="Cluster training backend: Kubeflow PyTorchJob, Kubeflow Trainer v2 TrainJob, or a plain Job. Operator default when unset."
    )
    workers: int = Field(0, ge=0, le=256, description="Worker replicas besides the master for multi-node training (PyTorchJob/TrainJob).")

    def learning_rate(self, own: ModelTrainingSpec) -> float:
        """``own``'s learning rate, or this method's default when it sets none."""
        return own.learningRate if own.learningRate is not None else DEFAULT_LEARNING_RATES[self.method]


class PairsSpec(Section):
    """How attack records become DPO pairs."""

    maxPromptChars: int = Field(1200, ge=64, description="Drop pairs whose prompt is longer.")
    maxResponseChars: int = Field(1200, ge=64, description="Truncate or drop answers longer than this.")
    refusalFallback: bool = Field(
        False,
        description="Opt-in departure from SEAS: when the target gave no safe answer to a prompt, use a fixed refusal as its chosen "
        "answer. It teaches the judge's favourite strings rather than the target's own better answers.",
    )
    helpfulPairs: int = Field(
        16, ge=0,
        description="Helpful (answer over refusal) pairs mixed into the target's data against over-refusal; never more than the round's "
        "safety pairs, which they would otherwise outweigh (the target's ASR rose when they did).",
    )


class InitializationSpec(Section):
    """SEAS initialization stage: supervised fine-tuning of the red team on the seeds."""

    enabled: bool = Field(False, description="Run supervised fine-tuning of the red team before round 1.")
    epochs: float = Field(1.0, gt=0.0, le=100.0, description="SFT epochs.")
    learningRate: float = Field(1.0e-4, gt=0.0, le=1.0, description="SFT learning rate.")


class EvaluationSpec(Section):
    """What every evaluation measures, and how sure its figures must be."""

    maxNewTokens: int = Field(64, ge=8, le=4096, description="Maximum new tokens per evaluated answer.")
    redteamSamples: int = Field(1, ge=0, le=64, description="Red-team prompts per seed for the red-team ASR (0 skips it).")
    samples: int = Field(
        1, ge=0, le=64,
        description="Sampled answers per adversarial prompt at sampleTemperature, for a sampled ASR beside the greedy one (0 skips it).",
    )
    sampleTemperature: float = Field(0.7, gt=0.0, le=2.0, description="Temperature of the sampled answers.")
    confidence: float = Field(
        0.95, ge=0.5, lt=1.0,
        description="Confidence of every interval. Gates pass only when the interval's bound is within the limit; "
        "a round counts as regressed when the paired test's p-value is below 1 - confidence.",
    )
    knowledgeGeneration: bool = Field(
        True, description="Also ask each knowledge question in chat mode and measure the answer (arXiv 2409.19476), beside the cloze scores."
    )
    knowledgeMaxTokens: int = Field(16, ge=1, le=256, description="New tokens for a knowledge answer in chat mode.")
    knowledgeContexts: list[Literal["none", "false", "random"]] = Field(
        default_factory=lambda: ["none", "false", "random"],
        min_length=1,
        description="Contexts each knowledge question is asked with (arXiv 2409.19476).",
    )
    batchSize: int = Field(32, ge=1, le=4096, description="Prompts per batch.")


class DataSpec(Section):
    """Data sets; each defaults to the set shipped with the runtime.

    Each can be a JSONL file with the shipped set's fields, a CSV in HarmBench's behaviours, AdvBench's or
    XSTest's format (or with the set's own field names as columns), or ``hf:<dataset id>[:<split>]`` where the
    cluster can reach the Hugging Face hub. Public benchmarks are for evaluation sets only, never seeds or helpful.
    """

    seeds: Optional[str] = Field(None, description="Seed prompts the red team learns from: prompt, category, style.")
    direct: Optional[str] = Field(None, description="Direct set: plain harmful requests with no attack template (target ASR without templates).")
    heldout: Optional[str] = Field(None, description="Adversarial set: templated held-out prompts, disjoint from the seeds (adversarial target ASR).")
    contrast: Optional[str] = Field(None, description="Contrast set: benign requests in the attack templates (over-refusal of templates).")
    benign: Optional[str] = Field(None, description="Benign-but-edgy prompts for over-refusal (XSTest-style).")
    helpful: Optional[str] = Field(None, description="Helpful instructions with answers: prompt, answer.")
    knowledge: Optional[str] = Field(None, description="Multiple-choice QA: question, choices, answer.")
