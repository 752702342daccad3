"""Pure builders of the Kubernetes objects that run SEAS stages (no API calls).

Every stage runs the same ``seas-runtime <stage>`` command, as an argument
list, in the runtime image; its config travels as JSON in the environment
variable ``SEAS_STAGE_CONFIG`` and its small JSON result comes back as the
container's termination message (``/dev/termination-log``). The stages that
train (``initialize``, ``train-*``) run it under ``torchrun``, one process per
GPU, wherever a pod may hold several processes (``launch_command``): every pod
of a PyTorchJob or TrainJob, and a Job pod with more than one GPU
(``--standalone``). Only rank 0 writes the result; the operator reads it from
the Master / first node (``kinds``). GPU pods get ``SEAS_GPUS_PER_POD`` (vLLM's
tensor parallel size).

- ``initialize``, ``attack``, ``pairs`` and ``evaluate``: a ``batch/v1`` Job.
- ``train-target``/``train-redteam``: by training backend (``training_backend``):
  Kubeflow ``PyTorchJob`` (``kubeflow.org/v1``; Master + ``spec.training.workers``
  Workers), Kubeflow Trainer v2 ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``,
  ClusterTrainingRuntime ``torch-distributed``, ``numNodes = workers + 1``), or a
  plain single-pod ``Job``.

Each child carries the labels ``seas.dev/evolution|round|stage|cycle|child`` (on
the object and on its pods) and a controller ownerReference to its
SafetyEvolution, so deleting the evolution garbage-collects it. The stage pod
template (``spec.pod`` over the operator's defaults, merged by the caller with
``pod_template.stage_pod``) adds its labels to the object and its pods (ours
win), its annotations, identity, pull secrets, scheduling and env to every pod,
and ``spec.resources.gpuResource`` names the GPU resource.

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
from typing import Any, Optional

from seas_runtime.contract import TRAIN_STAGES, USER_ERROR_EXIT_CODES, Stage, StageConfig, StageKey, dump_stage_config
from seas_runtime.layout import cluster_cache

from .api import API_VERSION, KIND, SafetyEvolutionSpec, endpoint_key_secrets
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
from .pod_template import PodTemplateSpec, stage_pod

CONFIG_ENV = "SEAS_STAGE_CONFIG"
TERMINATION_LOG = "/dev/termination-log"

RUNTIME_COMMAND = "seas-runtime"
RUN_AS = 10001  # the runtime image's user and group (images/runtime/Dockerfile)
ARTIFACTS_VOLUME = "artifacts"
SHM_VOLUME = "dshm"

# The pairs stage only reshapes JSONL records: no GPU, little CPU and memory.
PAIRS_CPU = "1"
PAIRS_MEMORY = "4Gi"

TRAINJOB_RUNTIME = "torch-distributed"
TRAINJOB_TARGET_JOB = "node"

# Stages that train, so run one process per GPU under torchrun (see launch_command).
TORCHRUN = "torchrun"
TORCHRUN_STAGES = (Stage.INITIALIZE, *TRAIN_STAGES)
# The training operator reads MASTER_PORT from the Master container's port of this name (it would add 23456 itself).
PYTORCHJOB_PORT = {"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"}
# GPUs of the stage pod, for the runtime: vLLM's tensor_parallel_size (seas_runtime/engines/vllm_engine.py reads it).
GPUS_ENV = "SEAS_GPUS_PER_POD"


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


def processes_per_pod(spec: SafetyEvolutionSpec, stage: Stage) -> int:
    """The processes torchrun starts in each pod of ``stage``: one per GPU (one on a CPU-only pod); 1 for stages it does not launch."""
    if stage not in TORCHRUN_STAGES:
        return 1
    return max(spec.resources.gpus, 1)


def launch_command(kind: ChildKind, spec: SafetyEvolutionSpec, stage: Stage) -> list[str]:
    """The container command of ``stage`` run as ``kind``: :func:`stage_command`, under ``torchrun`` where it trains.

    - PyTorchJob: ``--nnodes`` = Master + Workers, ``--nproc-per-node`` = GPUs per pod; the node rank and the
      master's address come from what the Kubeflow training operator (v1.7+) injects into every replica's
      container: ``PET_NODE_RANK`` (Master 0, Worker i -> i + 1), ``MASTER_ADDR`` (the Master's Service) and
      ``MASTER_PORT`` (the container port named ``pytorchjob-port``). Source: kubeflow/training-operator
      pkg/controller.v1/pytorch/envvar.go and master.go; https://www.kubeflow.org/docs/components/pytorch/.
    - TrainJob: the same, from what Kubeflow Trainer v2's Torch plugin injects into the ``node`` container:
      ``PET_NODE_RANK`` (the pod's JOB_COMPLETION_INDEX), ``PET_MASTER_ADDR`` (``<trainjob>-node-0-0.<trainjob>``)
      and ``PET_MASTER_PORT`` (29400). Source: kubeflow/trainer pkg/runtime/framework/plugins/torch/torch.go;
      https://www.kubeflow.org/docs/components/trainer/user-guides/pytorch/.
    - Job: one pod; with several GPUs ``torchrun --standalone`` (a local rendezvous), else the plain command.

    ``$(VAR)`` is expanded by the kubelet from the container's environment, not by a shell; torchrun would read the
    ``PET_*`` variables by itself too (torch/distributed/argparse_util.py), but naming them makes ``seas plan`` show
    where every rendezvous value comes from, and an operator that did not set one fails loudly at argument parsing.
    ``--no-python`` runs the ``seas-runtime`` console script; torchrun sets RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR and MASTER_PORT for each process (https://docs.pytorch.org/docs/stable/elastic/run.html).
    """
    command = stage_command(stage)
    if stage not in TORCHRUN_STAGES:
        return command
    nproc = processes_per_pod(spec, stage)
    if kind is PYTORCHJOB:
        rendezvous = [f"--nnodes={spec.training.workers + 1}", f"--nproc-per-node={nproc}",
                      "--node-rank=$(PET_NODE_RANK)", "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)"]
    elif kind is TRAINJOB:
        rendezvous = [f"--nnodes={spec.training.workers + 1}", f"--nproc-per-node={nproc}",
                      "--node-rank=$(PET_NODE_RANK)", "--master-addr=$(PET_MASTER_ADDR)", "--master-port=$(PET_MASTER_PORT)"]
    elif nproc > 1:
        rendezvous = ["--standalone", f"--nproc-per-node={nproc}"]
    else:
        return command
    return [TORCHRUN, *rendezvous, "--no-python", *command]


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


def _env(spec: SafetyEvolutionSpec, config: StageConfig, pod: PodTemplateSpec) -> list[dict[str, Any]]:
    cache = cluster_cache(spec.storage.mountPath)
    env: list[dict[str, Any]] = [
        {"name": CONFIG_ENV, "value": escape_env_value(config_json(config))},
        {"name": "SEAS_CACHE_DIR", "value": escape_env_value(cache)},
        {"name": "HF_HOME", "value": escape_env_value(f"{cache}/huggingface")},
    ]
    if _uses_gpu(spec, config.stage):
        env.append({"name": GPUS_ENV, "value": str(spec.resources.gpus)})
    # spec.pod.env: after ours (its names cannot repeat them), values literal like every CR string.
    for var in pod.env:
        if var.valueFrom is not None:
            env.append({"name": var.name, "valueFrom": var.valueFrom.model_dump(exclude_none=True)})
        else:
            env.append({"name": var.name, "value": escape_env_value(var.value or "")})
    if spec.hubTokenSecret is not None:
        # Last, so no earlier value could reference it even if escaping were lost.
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.hubTokenSecret.name, "key": spec.hubTokenSecret.key}}})
    # Served models' API keys, likewise from Secrets only; a name spec.pod.env already sets is left to it.
    for name, secret in endpoint_key_secrets(spec):
        if all(var["name"] != name for var in env):
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}})
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
        limits[spec.resources.gpuResource] = str(spec.resources.gpus)
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


def _scheduling(pod: PodTemplateSpec, kind: ChildKind) -> dict[str, Any]:
    """The pod-level fields of the stage pod template (identity, pull secrets, scheduling), only those set."""
    out: dict[str, Any] = {}
    if pod.serviceAccountName:
        out["serviceAccountName"] = pod.serviceAccountName
    if pod.imagePullSecrets:
        out["imagePullSecrets"] = [{"name": name} for name in pod.imagePullSecrets]
    if pod.priorityClassName:
        if kind is TRAINJOB:
            # Trainer v2.1's podTemplateOverrides has no priorityClassName: failing beats silently dropping it.
            raise ValueError("spec.pod.priorityClassName (or the operator's stagePod default) cannot be set on a TrainJob: "
                             "set it in the ClusterTrainingRuntime, use Kueue's kueue.x-k8s.io/priority-class label, or the pytorchjob backend")
        out["priorityClassName"] = pod.priorityClassName
    if pod.affinity:
        out["affinity"] = copy.deepcopy(pod.affinity)
    if pod.nodeSelector:
        out["nodeSelector"] = dict(pod.nodeSelector)
    if pod.tolerations:
        out["tolerations"] = [t.model_dump(exclude_none=True) for t in pod.tolerations]
    return out


def _template_metadata(labels: dict[str, str], pod: PodTemplateSpec) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": dict(labels)}
    if pod.annotations:
        meta["annotations"] = dict(pod.annotations)
    return meta


def _container(name: str, spec: SafetyEvolutionSpec, stage: Stage, config: StageConfig, image: str, pod: PodTemplateSpec) -> dict[str, Any]:
    gpu = _uses_gpu(spec, stage)
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": stage_command(stage),
        "env": _env(spec, config, pod),
        "resources": _resources(spec, stage),
        "volumeMounts": _volume_mounts(spec, gpu),
        "securityContext": _container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if pod.envFrom:
        container["envFrom"] = [source.model_dump(exclude_none=True) for source in pod.envFrom]
    return container


def _pod_template(labels: dict[str, str], container: dict[str, Any], spec: SafetyEvolutionSpec, stage: Stage, pvc: str,
                  pod_template: PodTemplateSpec, kind: ChildKind) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(),
        "containers": [container],
        "volumes": _volumes(spec, pvc, _uses_gpu(spec, stage)),
        **_scheduling(pod_template, kind),
    }
    return {"metadata": _template_metadata(labels, pod_template), "spec": pod}


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


def _pytorchjob(meta: dict[str, Any], template: dict[str, Any], spec: SafetyEvolutionSpec, stage: Stage) -> dict[str, Any]:
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
            # WORLD_SIZE = replicas x nprocPerNode and PET_NPROC_PER_NODE in the injected env (v1.7+), as torchrun runs it.
            "nprocPerNode": str(processes_per_pod(spec, stage)),
        },
    }


def _trainjob(meta: dict[str, Any], labels: dict[str, str], spec: SafetyEvolutionSpec, stage: Stage, config: StageConfig, image: str, pvc: str,
              pod: PodTemplateSpec) -> dict[str, Any]:
    gpu = _uses_gpu(spec, stage)
    if pod.envFrom:
        # The trainer container's env only goes through spec.trainer.env, which has no envFrom.
        raise ValueError("spec.pod.envFrom (or the operator's stagePod default) cannot be set on a TrainJob: "
                         "list the variables in spec.pod.env, or use the pytorchjob backend")
    override_spec: dict[str, Any] = {
        "securityContext": _pod_security_context(),
        "volumes": _volumes(spec, pvc, gpu),
        "containers": [{"name": TRAINJOB.container, "volumeMounts": _volume_mounts(spec, gpu), "securityContext": _container_security_context()}],
        **_scheduling(pod, TRAINJOB),
    }
    pod_labels = {**pod.labels, **labels}
    return {
        "apiVersion": TRAINJOB.api_version,
        "kind": TRAINJOB.kind,
        "metadata": meta,
        "spec": {
            "runtimeRef": {"name": TRAINJOB_RUNTIME, "kind": "ClusterTrainingRuntime", "apiGroup": TRAINJOB.group},
            "labels": dict(labels),
            "trainer": {
                "image": image,
                "command": launch_command(TRAINJOB, spec, stage),
                "env": _env(spec, config, pod),
                "numNodes": spec.training.workers + 1,
                # PET_NPROC_PER_NODE as torchrun runs it (the runtime's "auto" would count the GPUs itself).
                "numProcPerNode": processes_per_pod(spec, stage),
                "resourcesPerNode": _resources(spec, stage),
            },
            # Trainer v2.1+ API (podSpecOverrides in v2.0). The env of the "node" container can
            # only be set through spec.trainer; its termination message path is the default
            # /dev/termination-log.
            "podTemplateOverrides": [
                {"targetJobs": [{"name": TRAINJOB_TARGET_JOB}], "metadata": _template_metadata(pod_labels, pod), "spec": override_spec}
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
    pod: Optional[PodTemplateSpec] = None,
) -> StageObject:
    """The child object that runs stage ``key`` with ``config`` (raises ValueError when it cannot be built).

    ``pod`` is the stage pod template already merged with the operator's defaults (``pod_template.stage_pod``);
    when None, the spec's own (``spec.pod`` over ``spec.resources.nodeSelector``/``tolerations``).
    Its labels go on the object and its pods under ours (ours win); the rest on every pod.
    """
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
    pod = pod if pod is not None else stage_pod(spec)
    labels = stage_labels(owner, key, cycle, name)
    # Kueue and similar admission controllers read the workload object's own labels (kueue.x-k8s.io/queue-name).
    meta = _metadata(owner, name, {**pod.labels, **labels})
    if kind is TRAINJOB:
        body = _trainjob(meta, labels, spec, key.stage, config, image, pvc, pod)
    else:
        container = _container(kind.container, spec, key.stage, config, image, pod)
        container["command"] = launch_command(kind, spec, key.stage)
        if kind is PYTORCHJOB:
            container["ports"] = [dict(PYTORCHJOB_PORT)]
        template = _pod_template({**pod.labels, **labels}, container, spec, key.stage, pvc, pod, kind)
        body = _pytorchjob(meta, template, spec, key.stage) if kind is PYTORCHJOB else _job(meta, template, spec)
    return StageObject(child_kind=kind, name=name, body=body)


__all__ = [
    "CONFIG_ENV", "Owner", "StageObject", "TERMINATION_LOG", "build_stage_object", "config_json",
    "escape_env_value", "launch_command", "processes_per_pod", "stage_command", "training_backend",
]
