"""The stage pod template (``spec.pod``): what a platform sets on every stage pod, and how layers of it merge.

A GPU platform asks more of a pod than resources: a ServiceAccount (workload
identity), image pull secrets, labels (a Kueue queue), annotations, a priority
class, affinity, node selector, tolerations, and env/envFrom (proxies,
``HF_ENDPOINT``). :class:`PodTemplateSpec` holds them, validated as the API
server would, so a mistake is an ``InvalidSpec`` naming the field instead of a
child the API server refuses.

Three layers make the template a stage pod gets (:func:`stage_pod`), later
layers winning (:func:`merge_pod_templates`):

1. the operator's defaults (the chart's ``stagePod``, ``SEAS_STAGE_POD``);
2. the deprecated ``spec.resources.nodeSelector`` / ``spec.resources.tolerations``;
3. the evolution's own ``spec.pod``.

Merge rule: single values (``serviceAccountName``, ``priorityClassName``,
``affinity`` as a whole) are taken from the last layer that sets them; maps
(``labels``, ``annotations``, ``nodeSelector``) merge key by key, the later
layer winning a key; ``env`` merges by name, the later layer winning a name;
lists (``imagePullSecrets``, ``tolerations``, ``envFrom``) are concatenated
without duplicates, earlier layers first (for ``envFrom`` the later source wins
a key, as Kubernetes reads them in order).

Reserved: label and annotation keys under ``seas.dev/`` and the
``app.kubernetes.io/managed-by`` label are the operator's (its selectors and
ownership depend on them), and env names starting with ``SEAS_``, ``HF_HOME``
and ``HF_TOKEN`` are the stage contract's (``spec.hubTokenSecret`` sets the
token): setting them is rejected rather than silently overridden.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator, model_validator

from seas_runtime.problems import validation_problems
from seas_runtime.settings import Section

from .kinds import LABEL_MANAGED_BY

if TYPE_CHECKING:
    from .api import SafetyEvolutionSpec

RESERVED_PREFIX = "seas.dev/"
RESERVED_LABELS = frozenset({LABEL_MANAGED_BY})
RESERVED_ENV_PREFIX = "SEAS_"
RESERVED_ENV = frozenset({"HF_HOME", "HF_TOKEN"})
AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _is_label_value(text: str) -> bool:
    """Whether ``text`` is a Kubernetes label value (labels and nodeSelector values alike)."""
    return len(text) <= 63 and bool(_LABEL_VALUE.match(text))


def qualified_name_problem(key: str) -> Optional[str]:
    """Why ``key`` is not a Kubernetes qualified name (``[prefix/]name``, as label and annotation keys), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain (lowercase, at most 253 characters)"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f"{key!r}: the name must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def extended_resource_problem(name: str) -> Optional[str]:
    """Why ``name`` is not a Kubernetes extended resource name (``domain/name`` outside kubernetes.io), or None."""
    prefix, slash, _ = name.partition("/")
    if not slash:
        return f"{name!r} is not an extended resource name: it needs a domain, e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb"
    if prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"):
        return f"{name!r}: resources under kubernetes.io are native, not GPUs"
    return qualified_name_problem(name)


def _dns_subdomain(field: str, value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(f"{field} {value!r} is not a DNS subdomain name (lowercase letters, digits, '-' and '.')")
    return value


class TolerationSpec(Section):
    """A pod toleration."""

    key: Optional[str] = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


class KeySelectorSpec(Section):
    """A key of a Secret or ConfigMap in the evolution's namespace."""

    name: str = Field(min_length=1, description="Secret or ConfigMap name.")
    key: str = Field(min_length=1, description="Key in it.")
    optional: Optional[bool] = Field(None, description="Start the pod even when the key or object is missing.")


class FieldRefSpec(Section):
    """A field of the pod (downward API)."""

    fieldPath: str = Field(min_length=1, description="e.g. metadata.name, spec.nodeName, status.podIP.")
    apiVersion: Optional[str] = Field(None, description="Schema version of fieldPath; v1 when unset.")


class ResourceFieldRefSpec(Section):
    """A resource limit or request of the stage container."""

    resource: str = Field(min_length=1, description="e.g. limits.memory, requests.cpu.")
    containerName: Optional[str] = Field(None, description="The container; the stage container when unset.")
    divisor: Optional[str] = Field(None, description="Unit of the value (a quantity), 1 when unset.")


class EnvVarSourceSpec(Section):
    """Where an env value comes from: exactly one source."""

    secretKeyRef: Optional[KeySelectorSpec] = Field(None, description="A key of a Secret.")
    configMapKeyRef: Optional[KeySelectorSpec] = Field(None, description="A key of a ConfigMap.")
    fieldRef: Optional[FieldRefSpec] = Field(None, description="A field of the pod.")
    resourceFieldRef: Optional[ResourceFieldRefSpec] = Field(None, description="A resource of the container.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "EnvVarSourceSpec":
        set_ = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_) != 1:
            raise ValueError(f"valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef (got {set_ or 'none'})")
        return self


class EnvVarSpec(Section):
    """An environment variable of the stage container: a literal value or valueFrom."""

    name: str = Field(min_length=1, description="Variable name; SEAS_*, HF_HOME and HF_TOKEN are the operator's.")
    value: Optional[str] = Field(None, description="Literal value; '$' is not expanded (written as '$$' for the kubelet).")
    valueFrom: Optional[EnvVarSourceSpec] = Field(None, description="Value from a Secret, ConfigMap, pod field or resource.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"env name {value!r} must be letters, digits, '_', '-' or '.', not starting with a digit")
        if value.startswith(RESERVED_ENV_PREFIX) or value in RESERVED_ENV:
            raise ValueError(f"env name {value!r} is reserved for the operator (SEAS_*, HF_HOME, HF_TOKEN: set the token with spec.hubTokenSecret)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "EnvVarSpec":
        if (self.value is None) == (self.valueFrom is None):
            raise ValueError(f"env {self.name!r} needs exactly one of value or valueFrom")
        return self


class EnvFromRefSpec(Section):
    """A whole Secret or ConfigMap in the evolution's namespace."""

    name: str = Field(min_length=1, description="Secret or ConfigMap name.")
    optional: Optional[bool] = Field(None, description="Start the pod even when it is missing.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_subdomain("envFrom name", value)


class EnvFromSpec(Section):
    """Every key of a ConfigMap or Secret as environment variables: exactly one source."""

    configMapRef: Optional[EnvFromRefSpec] = Field(None, description="A ConfigMap.")
    secretRef: Optional[EnvFromRefSpec] = Field(None, description="A Secret.")
    prefix: Optional[str] = Field(None, description="Prepended to every key.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"envFrom prefix {value!r} must be letters, digits, '_', '-' or '.', not starting with a digit")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "EnvFromSpec":
        if (self.configMapRef is None) == (self.secretRef is None):
            raise ValueError("envFrom needs exactly one of configMapRef or secretRef")
        return self


class PodTemplateSpec(Section):
    """What every stage pod of the evolution (each Job, PyTorchJob Master and Worker, TrainJob node) gets.

    The operator's defaults (the chart's stagePod) merge under it: single values and affinity from spec.pod when set,
    maps key by key and env by name with spec.pod winning, lists concatenated.
    """

    serviceAccountName: Optional[str] = Field(
        None, description="ServiceAccount of stage pods (workload identity); its API token is still not mounted."
    )
    imagePullSecrets: list[str] = Field(default_factory=list, description="Names of Secrets for pulling the runtime image.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of each child object and its pods (e.g. kueue.x-k8s.io/queue-name); seas.dev/* and app.kubernetes.io/managed-by are the operator's.",
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations of stage pods; seas.dev/* are the operator's.")
    priorityClassName: Optional[str] = Field(None, description="PriorityClass of stage pods (Job and PyTorchJob backends).")
    affinity: Optional[dict[str, Any]] = Field(
        None, description="Pod affinity, as in a PodSpec (nodeAffinity, podAffinity, podAntiAffinity); replaces the operator default whole."
    )
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Node selector of stage pods.")
    tolerations: list[TolerationSpec] = Field(default_factory=list, description="Tolerations of stage pods.")
    env: list[EnvVarSpec] = Field(default_factory=list, description="Extra environment variables of the stage container.")
    envFrom: list[EnvFromSpec] = Field(
        default_factory=list, description="ConfigMaps and Secrets whose keys become environment variables (Job and PyTorchJob backends)."
    )

    @field_validator("serviceAccountName", "priorityClassName")
    @classmethod
    def _names(cls, value: Optional[str], info: Any) -> Optional[str]:
        return value if value is None else _dns_subdomain(info.field_name, value)

    @field_validator("imagePullSecrets")
    @classmethod
    def _secrets(cls, value: list[str]) -> list[str]:
        for name in value:
            _dns_subdomain("imagePullSecrets name", name)
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            problem = qualified_name_problem(key)
            if problem:
                raise ValueError(f"label key {problem}")
            if key.startswith(RESERVED_PREFIX) or key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is the operator's own (seas.dev/* and {LABEL_MANAGED_BY}); choose another key")
            if not _is_label_value(text):
                raise ValueError(f"label {key!r}: value {text!r} must be at most 63 characters of letters, digits, '-', '_' or '.', "
                                 "starting and ending alphanumeric")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            problem = qualified_name_problem(key)
            if problem:
                raise ValueError(f"annotation key {problem}")
            if key.startswith(RESERVED_PREFIX):
                raise ValueError(f"annotation {key!r} is the operator's own (seas.dev/*); choose another key")
        return value

    @field_validator("nodeSelector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            problem = qualified_name_problem(key)
            if problem:
                raise ValueError(f"nodeSelector key {problem}")
            if not _is_label_value(text):
                raise ValueError(f"nodeSelector {key!r}: value {text!r} is not a label value")
        return value

    @field_validator("affinity")
    @classmethod
    def _affinity(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is None:
            return value
        unknown = sorted(set(value) - set(AFFINITY_KEYS))
        if unknown:
            raise ValueError(f"affinity has unknown keys {unknown}; known: {', '.join(AFFINITY_KEYS)}")
        for key, sub in value.items():
            if not isinstance(sub, dict):
                raise ValueError(f"affinity.{key} must be an object")
        return value

    @field_validator("env")
    @classmethod
    def _unique_env(cls, value: list[EnvVarSpec]) -> list[EnvVarSpec]:
        names = [e.name for e in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"env names repeat: {', '.join(repeated)}")
        return value


def _ordered_union(*lists: list[Any]) -> list[Any]:
    out: list[Any] = []
    for items in lists:
        out.extend(item for item in items if item not in out)
    return out


def merge_pod_templates(*layers: PodTemplateSpec) -> PodTemplateSpec:
    """One template from ``layers``, later layers winning (see the module docstring for the rule)."""
    merged: dict[str, Any] = {}
    env: dict[str, EnvVarSpec] = {}
    for layer in layers:
        for name in ("serviceAccountName", "priorityClassName", "affinity"):
            if getattr(layer, name) is not None:
                merged[name] = getattr(layer, name)
        for name in ("labels", "annotations", "nodeSelector"):
            merged[name] = {**merged.get(name, {}), **getattr(layer, name)}
        for name in ("imagePullSecrets", "tolerations", "envFrom"):
            merged[name] = _ordered_union(merged.get(name, []), getattr(layer, name))
        env.update({e.name: e for e in layer.env})  # a name keeps its first place, takes its last value
    merged["env"] = list(env.values())
    return PodTemplateSpec.model_validate(merged)


def stage_pod(spec: "SafetyEvolutionSpec", defaults: Optional[PodTemplateSpec] = None) -> PodTemplateSpec:
    """The template of ``spec``'s stage pods: the operator's ``defaults``, then the deprecated
    ``spec.resources.nodeSelector``/``tolerations``, then ``spec.pod``."""
    try:
        legacy = PodTemplateSpec(nodeSelector=dict(spec.resources.nodeSelector), tolerations=list(spec.resources.tolerations))
    except ValidationError as exc:
        raise ValueError("spec.resources." + "; ".join(validation_problems(exc))) from None
    return merge_pod_templates(defaults or PodTemplateSpec(), legacy, spec.pod)


__all__ = [
    "DEFAULT_GPU_RESOURCE", "EnvFromSpec", "EnvVarSpec", "PodTemplateSpec", "TolerationSpec", "extended_resource_problem",
    "merge_pod_templates", "qualified_name_problem", "stage_pod",
]
