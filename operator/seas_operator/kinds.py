"""The one table of child kinds, and the labels every child carries.

For each kind a stage can run as: where it lives in the API, the container
that runs the stage and reports its result, how to read whether it finished,
and which of its pods is the leader whose termination message is the result:
the pod that holds global rank 0 under torchrun (a PyTorchJob's Master, a
TrainJob's first node); a Worker's message is never read.
Builders, readers and the API client use only this table; a new kind is a
new row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from seas_runtime.contract import TRAIN_STAGES, Stage

from .children import ChildState, job_state, pod_labels, pytorchjob_state, trainjob_state

# Our labels, on every child and on its pods.
LABEL_EVOLUTION = "seas.dev/evolution"
LABEL_ROUND = "seas.dev/round"
LABEL_STAGE = "seas.dev/stage"
LABEL_CYCLE = "seas.dev/cycle"
LABEL_CHILD = "seas.dev/child"  # the child object's name: selects a child's pods, whatever its kind
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "seas-operator"

# Labels the controllers put on the pods they create.
KUBEFLOW_REPLICA_TYPE = "training.kubeflow.org/replica-type"  # PyTorchJob: master | worker
JOBSET_JOB_INDEX = "jobset.sigs.k8s.io/job-index"  # TrainJob (a JobSet): which replicated Job
JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # an Indexed Job's pod index

Pod = Mapping[str, Any]


def _every_pod(pod: Pod) -> bool:
    return True


def _pytorchjob_master(pod: Pod) -> bool:
    # The Master is node rank 0 (PET_NODE_RANK 0), so its torchrun process 0 is global rank 0, the one that reports.
    return str(pod_labels(pod).get(KUBEFLOW_REPLICA_TYPE, "")).lower() == "master"


def _trainjob_first_node(pod: Pod) -> bool:
    # Trainer v2 sets PET_NODE_RANK from the pod's completion index, so node 0 of the first replicated Job is rank 0.
    # Both indices must be there: a pod that does not say which node it is could be a worker, and its message is not the result.
    labels = pod_labels(pod)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    # Kubernetes < 1.28 put the completion index in an annotation only.
    completion = labels.get(JOB_COMPLETION_INDEX, annotations.get(JOB_COMPLETION_INDEX))
    return str(labels.get(JOBSET_JOB_INDEX)) == "0" and str(completion) == "0"


@dataclass(frozen=True)
class ChildKind:
    """One kind of child object and everything the operator needs to know about it."""

    kind: str
    group: str
    version: str
    plural: str
    container: str  # the container that runs the stage and whose termination message is the result
    read_state: Callable[[Mapping[str, Any]], ChildState]
    is_leader: Callable[[Pod], bool]  # the pod that reports the result

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


JOB = ChildKind("Job", "batch", "v1", "jobs", "stage", job_state, _every_pod)
# The Kubeflow training operator requires the container name "pytorch".
PYTORCHJOB = ChildKind("PyTorchJob", "kubeflow.org", "v1", "pytorchjobs", "pytorch", pytorchjob_state, _pytorchjob_master)
# Kubeflow Trainer v2: the torch-distributed ClusterTrainingRuntime names its trainer container "node".
TRAINJOB = ChildKind("TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs", "node", trainjob_state, _trainjob_first_node)

CHILD_KINDS: dict[str, ChildKind] = {k.kind: k for k in (JOB, PYTORCHJOB, TRAINJOB)}
BACKEND_KINDS: dict[str, ChildKind] = {"pytorchjob": PYTORCHJOB, "trainjob": TRAINJOB, "job": JOB}
BACKENDS = tuple(BACKEND_KINDS)


def kind_named(kind: str) -> ChildKind:
    """The row for ``kind`` (raises ValueError for a kind the operator never creates)."""
    try:
        return CHILD_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown child kind {kind!r}; known: {', '.join(CHILD_KINDS)}") from None


def child_kind(stage: Stage, backend: str) -> ChildKind:
    """The kind of object ``stage`` runs as under training ``backend``: a Job, except training."""
    if stage not in TRAIN_STAGES:
        return JOB
    if backend not in BACKEND_KINDS:
        raise ValueError(f"unknown training backend {backend!r}; known: {', '.join(BACKENDS)}")
    return BACKEND_KINDS[backend]


def evolution_selector(evolution: str) -> str:
    """Label selector for every child of an evolution."""
    return f"{LABEL_EVOLUTION}={evolution}"


def child_selector(child: str) -> str:
    """Label selector for the pods of child ``child`` (whatever its kind)."""
    return f"{LABEL_CHILD}={child}"
