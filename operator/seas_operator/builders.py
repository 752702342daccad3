"""Pure builders of the Kubernetes objects that run SEAS stages (no API calls).

Every stage runs the same ``seas-runtime <stage>`` command, as an argument
list, in the runtime image; its config travels as JSON in the environment
variable ``SEAS_STAGE_CONFIG`` and its small JSON result comes back as the
container's termination message (``/dev/termination-log``).

- ``initialize``, ``attack``, ``pairs`` and ``evaluate``: a ``batch/v1`` Job.
- ``train-target``/``train-redteam``: by training backend (``training_backend``):
  Kubeflow ``PyTorchJob`` (``kubeflow.org/v1``; Master + ``spec.training.workers``
  Workers), Kubeflow Trainer v2 ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``,
  ClusterTrainingRuntime ``torch-distributed``, ``numNodes = workers + 1``), or a
  plain single-pod ``Job``.

Each child carries the labels ``seas.dev/evolution|round|stage|cycle|child`` (on
the object and on its pods) and a controller ownerReference to its
SafetyEvolution, so deleting the evolution garbage-collects it.

Precedence: ``spec.image``, ``spec.storage.pvc`` and ``spec.training.backend`` win
over the operator defaults passed in ``image``, ``pvc`` and ``backend``; passing
already-resolved values (``spec.image or default``) gives the same result.

Untrusted text (model names, paths, anything from the custom resource) only
reaches the pod inside the config env value, never the command. Kubernetes
expands ``$(VAR)`` references in env values, so every ``$`` in a value is
written as ``$$`` (which the kubelet turns back into ``$``): a model named
``$(HF_TOKEN)`` stays that string instead of becoming the token.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from seas_runtime.contract import TRAIN_STAGES, USER_ERROR_EXIT_CODES, Stage, StageConfig, StageKey, dump_stage_config
from seas_runtime.layout import cluster_cache

from .api import API_VERSION, KIND, SafetyEvolutionSpec
from .kinds import (
    BACKENDS,
    JOB,
    LABEL_CHILD,
    LABEL_CYCLE,
    LABEL_EVOLUTION,
    LABEL_MANAGED_BY,
    LABEL_ROUND,
    LABEL_STAGE,
    MANAGED_BY,
    PYTORCHJOB,
    TRAINJOB,
    ChildKind,
    child_kind,
)

CONFIG_ENV = "SEAS_STAGE_CONFIG"
TERMINATION_LOG = "/dev/termination-log"

RUNTIME_COMMAND = "seas-runtime"
RUN_AS = 10001  # the runtime image's user and group (images/runtime/Dockerfile)
GPU_RESOURCE = "nvidia.com/gpu"
ARTIFACTS_VOLUME = "artifacts"
SHM_VOLUME = "dshm"

# The pairs stage only reshapes JSONL records: no GPU, little CPU and memory.
PAIRS_CPU = "1"
PAIRS_MEMORY = "4Gi"

TRAINJOB_RUNTIME = "torch-distributed"
TRAINJOB_TARGET_JOB = "node"


@dataclass(frozen=True)
class Owner:
    """The SafetyEvolution that owns the children."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class StageObject:
    """A child object to create, with the row of the kinds table the API client creates it by."""

    child_kind: ChildKind
    name: str
    body: dict

    @property
    def kind(self) -> str:
        return self.child_kind.kind


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


def stage_command(stage: Stage) -> list[str]:
    """The container command of a stage: an argument list, never a shell line."""
    return [RUNTIME_COMMAND, str(stage), "--config-env", CONFIG_ENV, "--termination-log", TERMINATION_LOG]


def training_backend(spec: SafetyEvolutionSpec, default: str) -> str:
    """``spec.training.backend`` when set, else the operator's default."""
    backend = spec.training.backend or default
    if backend not in BACKENDS:
        raise ValueError(f"unknown training backend {backend!r}; known: {', '.join(BACKENDS)}")
    return backend


def escape_env_value(value: str) -> str:
    """An env value the kubelet will not expand: ``$`` -> ``$$`` (``$(VAR)`` stays literal)."""
    return value.replace("$", "$$")


def config_json(config: StageConfig) -> str:
    """The stage config as compact JSON (before env escaping)."""
    return json.dumps(dump_stage_config(config), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def stage_labels(owner: Owner, key: StageKey, cycle: int, name: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_EVOLUTION: owner.name,
        LABEL_CYCLE: str(cycle),
        LABEL_ROUND: str(key.round),
        LABEL_STAGE: str(key.stage),
        LABEL_CHILD: name,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(owner: Owner, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": owner.namespace, "labels": dict(labels), "ownerReferences": [owner_reference(owner)]}


def _env(spec: SafetyEvolutionSpec, config: StageConfig) -> list[dict[str, Any]]:
    cache = cluster_cache(spec.storage.mountPath)
    env: list[dict[str, Any]] = [
        {"name": CONFIG_ENV, "value": escape_env_value(config_json(config))},
        {"name": "SEAS_CACHE_DIR", "value": escape_env_value(cache)},
        {"name": "HF_HOME", "value": escape_env_value(f"{cache}/huggingface")},
    ]
    if spec.hubTokenSecret is not None:
        # Last, so no earlier value could reference it even if escaping were lost.
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.hubTokenSecret.name, "key": spec.hubTokenSecret.key}}})
    return env


def _check_quantity(field: str, value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{field}: {value!r} is not a Kubernetes quantity (e.g. 4, 500m, 32Gi)")
    return value


def _resources(spec: SafetyEvolutionSpec, stage: Stage) -> dict[str, Any]:
    if stage == Stage.PAIRS:
        return {"requests": {"cpu": PAIRS_CPU, "memory": PAIRS_MEMORY}, "limits": {"memory": PAIRS_MEMORY}}
    cpu = _check_quantity("spec.resources.cpu", spec.resources.cpu)
    memory = _check_quantity("spec.resources.memory", spec.resources.memory)
    disk = _check_quantity("spec.resources.ephemeralStorage", spec.resources.ephemeralStorage)
    limits: dict[str, str] = {"memory": memory, "ephemeral-storage": disk}
    if spec.resources.gpus > 0:
        limits[GPU_RESOURCE] = str(spec.resources.gpus)
    return {"requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": disk}, "limits": limits}


def _uses_gpu(spec: SafetyEvolutionSpec, stage: Stage) -> bool:
    return stage != Stage.PAIRS and spec.resources.gpus > 0


def _pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        # Only chown the artifact volume when its root does not match: a recursive
        # chown of a large RWX volume of checkpoints on every pod start is slow.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _volumes(spec: SafetyEvolutionSpec, pvc: str, gpu: bool) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": ARTIFACTS_VOLUME, "persistentVolumeClaim": {"claimName": pvc}}]
    if gpu:
        # vLLM and NCCL need more shared memory than the container runtime's 64 MiB /dev/shm; the limit
        # keeps a runaway writer from taking the node's memory (it counts against the pod's memory limit).
        size = _check_quantity("spec.resources.shmSize", spec.resources.shmSize)
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}})
    return volumes


def _volume_mounts(spec: SafetyEvolutionSpec, gpu: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": ARTIFACTS_VOLUME, "mountPath": spec.storage.mountPath}]
    if gpu:
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    return mounts


def _tolerations(spec: SafetyEvolutionSpec) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True) for t in spec.resources.tolerations]


def _scheduling(spec: SafetyEvolutionSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.resources.nodeSelector:
        out["nodeSelector"] = dict(spec.resources.nodeSelector)
    tolerations = _tolerations(spec)
    if tolerations:
        out["tolerations"] = tolerations
    return out


def _container(name: str, spec: SafetyEvolutionSpec, stage: Stage, config: StageConfig, image: str) -> dict[str, Any]:
    gpu = _uses_gpu(spec, stage)
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": stage_command(stage),
        "env": _env(spec, config),
        "resources": _resources(spec, stage),
        "volumeMounts": _volume_mounts(spec, gpu),
        "securityContext": _container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _pod_template(labels: dict[str, str], container: dict[str, Any], spec: SafetyEvolutionSpec, stage: Stage, pvc: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(),
        "containers": [container],
        "volumes": _volumes(spec, pvc, _uses_gpu(spec, stage)),
        **_scheduling(spec),
    }
    return {"metadata": {"labels": dict(labels)}, "spec": pod}


def _check_name(name: str, kind: ChildKind, spec: SafetyEvolutionSpec) -> None:
    if len(name) > 63 or not _DNS1123_LABEL.match(name):
        raise ValueError(f"child name {name!r} is not a DNS label of at most 63 characters")
    if kind in (PYTORCHJOB, TRAINJOB) and not _DNS1035_LABEL.match(name):
        raise ValueError(f"{kind.kind} name {name!r} must start with a letter (RFC 1035 label)")
    if kind is PYTORCHJOB:
        # The training operator names a Service per replica <name>-worker-<i> (RFC 1035, <= 63).
        longest = f"{name}-worker-{max(spec.training.workers - 1, 0)}" if spec.training.workers else f"{name}-master-0"
        if len(longest) > 63:
            raise ValueError(f"PyTorchJob name {name!r} is too long: its replica Service {longest!r} exceeds 63 characters")


def pod_failure_policy() -> dict[str, Any]:
    """A node drain or preemption (``DisruptionTarget``) costs no retry; a user error (exit 2 bad config, 3 bad data
    or an unloadable model, see ``seas_runtime.cli``) fails the Job at once instead of being retried on GPUs."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            # Kubernetes 1.27's schema requires onPodConditions on every rule; empty means "by exit code only".
            {"action": "FailJob", "onExitCodes": {"containerName": JOB.container, "operator": "In", "values": sorted(USER_ERROR_EXIT_CODES)},
             "onPodConditions": []},
        ]
    }


def _job(meta: dict[str, Any], template: dict[str, Any], spec: SafetyEvolutionSpec) -> dict[str, Any]:
    return {
        "apiVersion": JOB.api_version,
        "kind": JOB.kind,
        "metadata": meta,
        "spec": {
            # The operator retries with a new child name; a pod failure must surface once.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.activeDeadlineSeconds,
            "podFailurePolicy": pod_failure_policy(),
            # No ttlSecondsAfterFinished: the operator reads the finished Job and its pod.
            "template": template,
        },
    }


def _pytorchjob(meta: dict[str, Any], template: dict[str, Any], spec: SafetyEvolutionSpec) -> dict[str, Any]:
    replicas: dict[str, Any] = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if spec.training.workers > 0:
        replicas["Worker"] = {"replicas": spec.training.workers, "restartPolicy": "Never", "template": copy.deepcopy(template)}
    return {
        "apiVersion": PYTORCHJOB.api_version,
        "kind": PYTORCHJOB.kind,
        "metadata": meta,
        "spec": {
            "runPolicy": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": spec.activeDeadlineSeconds,
                # Stop workers still running when the job ends (a failed master leaves them hanging on
                # NCCL); finished pods stay, since their termination message carries the result.
                "cleanPodPolicy": "Running",
            },
            "pytorchReplicaSpecs": replicas,
        },
    }


def _trainjob(meta: dict[str, Any], labels: dict[str, str], spec: SafetyEvolutionSpec, stage: Stage, config: StageConfig, image: str, pvc: str) -> dict[str, Any]:
    gpu = _uses_gpu(spec, stage)
    override_spec: dict[str, Any] = {
        "securityContext": _pod_security_context(),
        "volumes": _volumes(spec, pvc, gpu),
        "containers": [{"name": TRAINJOB.container, "volumeMounts": _volume_mounts(spec, gpu), "securityContext": _container_security_context()}],
        **_scheduling(spec),
    }
    return {
        "apiVersion": TRAINJOB.api_version,
        "kind": TRAINJOB.kind,
        "metadata": meta,
        "spec": {
            "runtimeRef": {"name": TRAINJOB_RUNTIME, "kind": "ClusterTrainingRuntime", "apiGroup": TRAINJOB.group},
            "labels": dict(labels),
            "trainer": {
                "image": image,
                "command": stage_command(stage),
                "env": _env(spec, config),
                "numNodes": spec.training.workers + 1,
                "resourcesPerNode": _resources(spec, stage),
            },
            # Trainer v2.1+ API (podSpecOverrides in v2.0). The env of the "node" container can
            # only be set through spec.trainer; its termination message path is the default
            # /dev/termination-log.
            "podTemplateOverrides": [
                {"targetJobs": [{"name": TRAINJOB_TARGET_JOB}], "metadata": {"labels": dict(labels)}, "spec": override_spec}
            ],
        },
    }


def build_stage_object(
    owner: Owner,
    spec: SafetyEvolutionSpec,
    key: StageKey,
    config: StageConfig,
    *,
    name: str,
    image: str,
    pvc: str,
    backend: str,
    cycle: int = 0,
) -> StageObject:
    """The child object that runs stage ``key`` with ``config`` (raises ValueError when it cannot be built)."""
    backend = training_backend(spec, backend) if key.stage in TRAIN_STAGES else backend
    kind = child_kind(key.stage, backend)
    if kind is JOB and key.stage in TRAIN_STAGES and spec.training.workers > 0:
        raise ValueError("spec.training.workers needs the pytorchjob or trainjob training backend (a plain Job is one pod)")
    _check_name(name, kind, spec)
    image = spec.image or image
    pvc = spec.storage.pvc or pvc
    if not image:
        raise ValueError("no runtime image: set spec.image or the operator's default")
    if not pvc:
        raise ValueError("no artifact PVC: set spec.storage.pvc or the operator's default")
    labels = stage_labels(owner, key, cycle, name)
    meta = _metadata(owner, name, labels)
    if kind is TRAINJOB:
        body = _trainjob(meta, labels, spec, key.stage, config, image, pvc)
    else:
        template = _pod_template(labels, _container(kind.container, spec, key.stage, config, image), spec, key.stage, pvc)
        body = _pytorchjob(meta, template, spec) if kind is PYTORCHJOB else _job(meta, template, spec)
    return StageObject(child_kind=kind, name=name, body=body)


__all__ = [
    "CONFIG_ENV", "Owner", "StageObject", "TERMINATION_LOG", "build_stage_object", "config_json",
    "escape_env_value", "stage_command", "training_backend",
]
