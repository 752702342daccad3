"""The operator's own settings: parsed once at start-up from its flags and environment, then passed along.

The Helm chart sets the environment (``SEAS_RUNTIME_IMAGE``, ``SEAS_DEFAULT_PVC``,
``SEAS_DEFAULT_TRAINING_BACKEND``, ``SEAS_RECONCILE_INTERVAL``); ``seas operator``'s
flags set the namespaces and ports. Nothing reads the environment at import time.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seas_runtime.problems import validation_problems

from .kinds import BACKENDS

# Environment variable -> setting.
ENVIRONMENT = {
    "SEAS_RUNTIME_IMAGE": "image",
    "SEAS_DEFAULT_PVC": "pvc",
    "SEAS_DEFAULT_TRAINING_BACKEND": "backend",
    "SEAS_RECONCILE_INTERVAL": "interval",
    "SEAS_RETRY_BASE_SECONDS": "retry_base_seconds",
    "SEAS_RETRY_MAX_SECONDS": "retry_max_seconds",
    "SEAS_LOG_LEVEL": "log_level",
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

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown training backend {value!r}; known: {', '.join(BACKENDS)}")
        return value


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
        raise SettingsError("; ".join(validation_problems(exc))) from None
