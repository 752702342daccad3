"""The operator's own settings: parsed once at start-up from its flags and environment, then passed along.

The Helm chart sets the environment (``SEAS_RUNTIME_IMAGE``, ``SEAS_DEFAULT_PVC``,
``SEAS_DEFAULT_TRAINING_BACKEND``, ``SEAS_RECONCILE_INTERVAL``, and as JSON the stage
pod defaults ``SEAS_STAGE_POD`` and the policy's ``SEAS_ALLOWED_IMAGES``;
``SEAS_MAX_GPUS_PER_STAGE`` is an integer); ``seas operator``'s flags set the
namespaces and ports. Nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seas_runtime.problems import validation_problems

from .kinds import BACKENDS
from .pod_template import PodTemplateSpec

# Environment variable -> setting.
ENVIRONMENT = {
    "SEAS_RUNTIME_IMAGE": "image",
    "SEAS_DEFAULT_PVC": "pvc",
    "SEAS_DEFAULT_TRAINING_BACKEND": "backend",
    "SEAS_RECONCILE_INTERVAL": "interval",
    "SEAS_RETRY_BASE_SECONDS": "retry_base_seconds",
    "SEAS_RETRY_MAX_SECONDS": "retry_max_seconds",
    "SEAS_LOG_LEVEL": "log_level",
    "SEAS_API_TIMEOUT_SECONDS": "api_timeout_seconds",
    "SEAS_API_UNAVAILABLE_SECONDS": "api_unavailable_seconds",
    # The chart's stagePod (JSON object) and policy (allowedImages as a JSON list).
    "SEAS_STAGE_POD": "pod_defaults",
    "SEAS_ALLOWED_IMAGES": "allowed_images",
    "SEAS_MAX_GPUS_PER_STAGE": "max_gpus_per_stage",
    # Leader election (two replicas, one active); POD_NAMESPACE comes from the downward API.
    "POD_NAMESPACE": "leader_namespace",
    "SEAS_LEADER_LEASE": "leader_lease_name",
    "SEAS_LEADER_LEASE_SECONDS": "leader_lease_seconds",
    "SEAS_LEADER_RENEW_SECONDS": "leader_renew_seconds",
    "SEAS_LEADER_RETRY_SECONDS": "leader_retry_seconds",
}


class OperatorSettings(BaseModel):
    """Operator-wide defaults and how the operator runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field("ghcr.io/seas-dev/seas-runtime:0.1.0", min_length=1, description="Runtime image when spec.image is unset.")
    pvc: str = Field("seas-artifacts", min_length=1, description="Artifact PVC when spec.storage.pvc is unset.")
    backend: str = Field("pytorchjob", description="Training backend when spec.training.backend is unset.")
    interval: float = Field(15.0, gt=0, description="Seconds between re-checks of each evolution.")
    retry_base_seconds: float = Field(30.0, ge=0, description="Backoff before the first retry of a failed stage; it doubles per failure.")
    retry_max_seconds: float = Field(600.0, ge=0, description="Longest backoff between retries.")
    namespaces: tuple[str, ...] = Field((), description="Namespaces to watch; every namespace when empty.")
    metrics_port: int = Field(8080, ge=0, le=65535, description="Port of /metrics (0: none).")
    health_port: int = Field(8081, ge=0, le=65535, description="Port of /healthz (0: none).")
    log_level: str = Field("INFO", description="Log level.")
    api_timeout_seconds: float = Field(30.0, gt=0, le=600, description="Longest wait for one Kubernetes API call (kopf's watches: a little over 5 minutes).")
    api_unavailable_seconds: float = Field(300.0, ge=0, description="How long API calls must keep failing before an evolution turns Degraded (APIUnavailable).")
    leader_namespace: str = Field("default", min_length=1, description="Namespace of the leader-election Lease (the operator's own).")
    leader_lease_name: str = Field("seas-operator", min_length=1, description="Name of the leader-election Lease.")
    # Lease.spec.leaseDurationSeconds is an int32 in the API, hence an int here.
    leader_lease_seconds: int = Field(15, ge=1, description="Seconds a Lease stays valid without renewal; a standby takes over after it.")
    leader_renew_seconds: float = Field(10.0, gt=0, description="The leader exits when it could not renew for this long.")
    leader_retry_seconds: float = Field(2.0, gt=0, description="Seconds between renewals (leader) and acquisition attempts (standby).")
    pod_defaults: PodTemplateSpec = Field(default_factory=PodTemplateSpec, description="Stage pod template every spec.pod merges over.")
    allowed_images: tuple[str, ...] = Field((), description="Image prefixes stage pods may run (policy); any image when empty.")
    max_gpus_per_stage: Optional[int] = Field(None, ge=0, description="Most GPUs one stage pod may ask for (policy); no limit when unset.")

    @field_validator("pod_defaults", "allowed_images", mode="before")
    @classmethod
    def _json(cls, value: Any, info: Any) -> Any:
        # From the environment these arrive as JSON text.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
        return value

    @field_validator("allowed_images")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not prefix.strip() for prefix in value):
            raise ValueError("an empty image prefix would allow every image; leave the list empty instead")
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown training backend {value!r}; known: {', '.join(BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _leader_timings(self) -> "OperatorSettings":
        # The leader must give up (renew deadline) before a standby may take over (lease duration),
        # and must get more than one renewal attempt inside the deadline: the client-go ordering.
        if not self.leader_retry_seconds < self.leader_renew_seconds < self.leader_lease_seconds:
            raise ValueError(f"leader election needs retry < renew < lease seconds; got retry {self.leader_retry_seconds:g}, "
                             f"renew {self.leader_renew_seconds:g}, lease {self.leader_lease_seconds}")
        return self


class SettingsError(ValueError):
    """The operator's flags or environment are unusable; one line per problem."""


def load_settings(environ: Mapping[str, str], namespaces: Optional[Sequence[str]] = None, metrics_port: Optional[int] = None,
                  health_port: Optional[int] = None) -> OperatorSettings:
    """Settings from the environment plus the command line's flags (flags win)."""
    values: dict[str, object] = {field: environ[var] for var, field in ENVIRONMENT.items() if environ.get(var)}
    flags = {"namespaces": tuple(namespaces or ()), "metrics_port": metrics_port, "health_port": health_port}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return OperatorSettings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError("; ".join(_with_variable(line) for line in validation_problems(exc))) from None


def _with_variable(problem: str) -> str:
    """``field...: message`` prefixed with the environment variable the chart sets for that field, when there is one."""
    field = problem.split(":", 1)[0].split(".", 1)[0]
    variable = next((var for var, name in ENVIRONMENT.items() if name == field), None)
    return f"{variable}: {problem}" if variable else problem
