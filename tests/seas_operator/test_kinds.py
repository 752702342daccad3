"""The table of child kinds: which pod of each kind reports the stage result, and which kind a stage runs as."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from seas_operator.children import result_pod
from seas_operator.kinds import BACKEND_KINDS, CHILD_KINDS, JOB, PYTORCHJOB, TRAINJOB, child_kind, evolution_selector
from seas_operator.rbac import API_CALLS
from seas_runtime.contract import Stage


def pod(labels: Optional[dict] = None, created: str = "2025-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": labels or {}, "creationTimestamp": created}, "status": {}}


MASTER = {"training.kubeflow.org/replica-type": "master"}
WORKER = {"training.kubeflow.org/replica-type": "worker"}


@pytest.mark.parametrize(
    "kind, pods, expected",
    [
        (JOB, [], None),
        (JOB, [pod({"job-name": "a"})], 0),
        (JOB, [pod({"job-name": "a"}, "2025-01-01T00:00:00Z"), pod({"job-name": "a"}, "2025-01-01T00:05:00Z")], 1),  # the replacement
        (PYTORCHJOB, [pod(WORKER), pod(MASTER)], 1),
        (PYTORCHJOB, [pod({"training.kubeflow.org/replica-type": "Worker"})], None),
        (PYTORCHJOB, [pod({"job-name": "a"})], None),  # not labelled by the training operator: not its master
        (TRAINJOB, [pod({"jobset.sigs.k8s.io/job-index": "1", "batch.kubernetes.io/job-completion-index": "0"}),
                    pod({"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "1"}),
                    pod({"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "0"})], 2),
    ],
    ids=lambda v: v.kind if hasattr(v, "kind") else None,
)
def test_result_pod_is_the_leader(kind, pods: list, expected: Optional[int]):
    chosen = result_pod(pods, kind.is_leader)
    if expected is None:
        assert chosen is None
    else:
        assert chosen is pods[expected]


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("backend", list(BACKEND_KINDS))
def test_only_training_follows_the_backend(stage: Stage, backend: str):
    expected = BACKEND_KINDS[backend] if stage in (Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM) else JOB
    assert child_kind(stage, backend) is expected


def test_every_kind_can_be_listed_and_created_under_the_granted_rbac():
    granted = {(group, resource, verb) for group, resource, verb, _ in API_CALLS}
    for kind in CHILD_KINDS.values():
        assert {(kind.group, kind.plural, "list"), (kind.group, kind.plural, "create")} <= granted, kind.kind


def test_selectors():
    assert evolution_selector("demo") == "seas.dev/evolution=demo"


def _finished(labels: dict, message: str, created: str, annotations: Optional[dict] = None, container: str = "pytorch") -> dict[str, Any]:
    return {"metadata": {"name": message, "labels": labels, "annotations": annotations or {}, "creationTimestamp": created},
            "status": {"containerStatuses": [{"name": container, "state": {"terminated": {"exitCode": 0, "message": message}}}]}}


@pytest.mark.parametrize(
    "kind, pods, expected",
    [
        # A Worker (another node's ranks) that finished later, even one that wrote a message anyway, is never the result.
        (PYTORCHJOB, [_finished(MASTER, "master", "2025-01-01T00:00:00Z"), _finished(WORKER, "worker", "2025-01-01T00:09:00Z")], "master"),
        (PYTORCHJOB, [_finished(WORKER, "worker-0", "2025-01-01T00:00:00Z"), _finished(WORKER, "worker-1", "2025-01-01T00:00:00Z")], None),
        (TRAINJOB, [_finished({"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "1"}, "node-1", "2025-01-01T00:09:00Z", container="node"),
                    _finished({"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "0"}, "node-0", "2025-01-01T00:00:00Z", container="node")],
         "node-0"),
        # Kubernetes < 1.28 keeps the completion index in an annotation; a pod without any index may be any node: not the result.
        (TRAINJOB, [_finished({"jobset.sigs.k8s.io/job-index": "0"}, "node-0", "2025-01-01T00:00:00Z", {"batch.kubernetes.io/job-completion-index": "0"}, "node"),
                    _finished({}, "unlabelled", "2025-01-01T00:09:00Z", container="node")], "node-0"),
    ],
    ids=["pytorchjob-worker-ignored", "pytorchjob-only-workers", "trainjob-node-1-ignored", "trainjob-annotation-index"],
)
def test_the_result_is_read_from_rank_0s_pod_only(kind, pods: list, expected: Optional[str]):
    from seas_operator.children import termination_message

    chosen = result_pod(pods, kind.is_leader)
    assert (termination_message(chosen, kind.container) if chosen is not None else None) == expected
