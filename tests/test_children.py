"""Reading what stage children report: object state, termination messages, pod failure reasons."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from seas_operator.children import (
    ChildState,
    child_state,
    job_state,
    pod_failure_reason,
    pytorchjob_state,
    result_pod,
    termination_message,
    trainjob_state,
)


def cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": "2025-01-01T00:00:00Z"}


def obj(conditions: Optional[list] = None, spec: Optional[dict] = None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {"backoffLimit": 0, **(spec or {})}}
    if conditions is not None or status:
        body["status"] = {**({"conditions": conditions} if conditions is not None else {}), **status}
    return body


# --------------------------------------------------------------------------- child objects


@pytest.mark.parametrize(
    "body, expected",
    [
        (obj(), ChildState("running")),
        (obj([]), ChildState("running")),
        (obj(active=1), ChildState("running")),
        (obj([cond("Complete", reason="CompletionsReached")], succeeded=1), ChildState("succeeded", "CompletionsReached")),
        (obj([cond("Complete")]), ChildState("succeeded", "Complete")),
        (obj([cond("Complete", "False")]), ChildState("running")),
        (obj([cond("Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline")], failed=1),
         ChildState("failed", "DeadlineExceeded", "Job was active longer than specified deadline")),
        (obj([cond("Failed", reason="BackoffLimitExceeded")]), ChildState("failed", "BackoffLimitExceeded")),
        (obj([cond("Complete"), cond("Failed", reason="PodFailurePolicy")]), ChildState("failed", "PodFailurePolicy")),
        # Kubernetes 1.31+: interim conditions while pods terminate are not final.
        (obj([cond("FailureTarget", reason="BackoffLimitExceeded")], failed=1), ChildState("running", "Finishing")),
        (obj([cond("SuccessCriteriaMet")], succeeded=1), ChildState("running", "Finishing")),
        (obj([cond("Suspended")]), ChildState("running")),
        # Without conditions (a test playing the job controller): the counts.
        (obj(succeeded=1), ChildState("succeeded", "Completed")),
        (obj(failed=1), ChildState("failed", "BackoffLimitExceeded", "1 failed pod(s)")),
        (obj(spec={"backoffLimit": 2}, failed=2), ChildState("running")),
        (obj(spec={"backoffLimit": 2}, failed=3), ChildState("failed", "BackoffLimitExceeded", "3 failed pod(s)")),
        ({"spec": {}, "status": {"failed": 1}}, ChildState("running")),  # default backoffLimit is 6
        (obj(spec={"completions": 2}, succeeded=1), ChildState("running")),
    ],
)
def test_job_state(body: dict, expected: ChildState):
    assert job_state(body) == expected
    assert child_state("Job", body) == expected


@pytest.mark.parametrize(
    "conditions, expected",
    [
        (None, ChildState("running")),
        ([cond("Created", reason="PyTorchJobCreated")], ChildState("running")),
        ([cond("Created"), cond("Running", reason="PyTorchJobRunning")], ChildState("running")),
        ([cond("Created"), cond("Running"), cond("Restarting")], ChildState("running")),
        ([cond("Created"), cond("Running", "False"), cond("Succeeded", reason="PyTorchJobSucceeded", message="PyTorchJob x is successfully completed.")],
         ChildState("succeeded", "PyTorchJobSucceeded", "PyTorchJob x is successfully completed.")),
        ([cond("Created"), cond("Running", "False"), cond("Failed", reason="PyTorchJobFailed", message="PyTorchJob x is failed because 1 Master replica(s) failed.")],
         ChildState("failed", "PyTorchJobFailed", "PyTorchJob x is failed because 1 Master replica(s) failed.")),
        ([cond("Succeeded", "False")], ChildState("running")),
        ([cond("Suspended")], ChildState("running")),
    ],
)
def test_pytorchjob_state(conditions, expected):
    body = obj(conditions)
    assert pytorchjob_state(body) == expected
    assert child_state("PyTorchJob", body) == expected


@pytest.mark.parametrize(
    "conditions, expected",
    [
        (None, ChildState("running")),
        ([cond("Suspended", "False", reason="Resumed")], ChildState("running")),
        ([cond("Complete", reason="JobsCompleted", message="jobset completed successfully")], ChildState("succeeded", "JobsCompleted", "jobset completed successfully")),
        ([cond("Failed", reason="FailedJobs", message="jobset failed")], ChildState("failed", "FailedJobs", "jobset failed")),
        ([cond("Failed", reason="DeadlineExceeded")], ChildState("failed", "DeadlineExceeded")),
        ([cond("Complete", "False")], ChildState("running")),
    ],
)
def test_trainjob_state(conditions, expected):
    body = obj(conditions)
    assert trainjob_state(body) == expected
    assert child_state("TrainJob", body) == expected


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="MPIJob"):
        child_state("MPIJob", obj())


def test_finished_property():
    assert not ChildState("running").finished
    assert ChildState("succeeded").finished and ChildState("failed").finished


# --------------------------------------------------------------------------- pods


def container(name: str, state: Optional[dict] = None, last: Optional[dict] = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ready": False, "restartCount": 0, "image": "img", "imageID": "", "state": state or {}}
    if last is not None:
        out["lastState"] = last
    return out


def terminated(exit_code: int = 0, reason: str = "Completed", message: Optional[str] = None) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message is not None:
        out["message"] = message
    return {"terminated": out}


def pod(*statuses: dict, phase: str = "Running", labels: Optional[dict] = None, created: str = "2025-01-01T00:00:00Z", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": labels or {}, "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": list(statuses), **status},
    }


RESULT = '{"stage":"attack","round":1}'


@pytest.mark.parametrize(
    "body, expected",
    [
        (pod(container("stage", terminated(0, message=RESULT)), phase="Succeeded"), RESULT),
        (pod(container("pytorch", terminated(0, message=RESULT)), phase="Succeeded"), RESULT),
        (pod(container("node", terminated(0, message=RESULT)), phase="Succeeded"), RESULT),
        (pod(container("istio-proxy", terminated(0, message="sidecar")), container("stage", terminated(0, message=RESULT))), RESULT),
        (pod(container("stage", {"running": {}}, last=terminated(0, message=RESULT))), RESULT),
        (pod(container("only", terminated(0, message=RESULT))), RESULT),  # a single container, whatever its name
        (pod(container("stage", terminated(0))), None),
        (pod(container("stage", terminated(0, message="  \n"))), None),
        (pod(container("stage", {"running": {"startedAt": "2025-01-01T00:00:00Z"}})), None),
        (pod(container("a", terminated(0, message="x")), container("b", terminated(0, message="y"))), None),
        (pod(), None),
        ({"metadata": {}}, None),
    ],
)
def test_termination_message(body: dict, expected: Optional[str]):
    assert termination_message(body) == expected


LOG_TAIL = "2025 INFO loading model\nTraceback (most recent call last):\n  File x\nseas-runtime: attack failed: model 'x' not found\n"


@pytest.mark.parametrize(
    "body, expected",
    [
        (pod(container("stage", terminated(137, "OOMKilled")), phase="Failed"), "OOMKilled (exit 137)"),
        (pod(container("stage", terminated(137, "OOMKilled", "log tail")), phase="Failed"), "OOMKilled (exit 137)"),
        (pod(container("stage", terminated(3, "Error", LOG_TAIL)), phase="Failed"), "Error (exit 3): seas-runtime: attack failed: model 'x' not found"),
        (pod(container("pytorch", terminated(1, "Error", "x" * 1000)), phase="Failed"), "Error (exit 1): " + "x" * 300),
        (pod(container("stage", terminated(2, "")), phase="Failed"), "Error (exit 2)"),
        (pod(container("stage", {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "ghcr.io/x"'}}), phase="Pending"),
         'ImagePullBackOff: Back-off pulling image "ghcr.io/x"'),
        (pod(container("stage", {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}}), phase="Pending"),
         'CreateContainerConfigError: secret "hf-token" not found'),
        (pod(container("stage", {"waiting": {"reason": "ContainerCreating"}}), phase="Pending"), ""),
        (pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory."), "Evicted: The node was low on resource: memory."),
        (pod(phase="Failed", reason="DeadlineExceeded"), "DeadlineExceeded"),
        (pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                           "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]),
         "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
        (pod(container("stage", terminated(0, message=RESULT)), phase="Succeeded"), ""),
        (pod(container("stage", {"running": {}})), ""),
        (pod(phase="Failed"), "Failed"),
        ({}, ""),
    ],
)
def test_pod_failure_reason(body: dict, expected: str):
    assert pod_failure_reason(body) == expected


@pytest.mark.parametrize(
    "pods, expected",
    [
        ([], None),
        ([pod(labels={"job-name": "a"})], 0),
        ([pod(labels={"job-name": "a"}, created="2025-01-01T00:00:00Z"), pod(labels={"job-name": "a"}, created="2025-01-01T00:05:00Z")], 1),
        ([pod(labels={"training.kubeflow.org/replica-type": "worker"}), pod(labels={"training.kubeflow.org/replica-type": "master"})], 1),
        ([pod(labels={"training.kubeflow.org/replica-type": "Worker"})], None),
        ([pod(labels={"jobset.sigs.k8s.io/job-index": "1", "batch.kubernetes.io/job-completion-index": "0"}),
          pod(labels={"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "1"}),
          pod(labels={"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": "0"})], 2),
    ],
)
def test_result_pod(pods: list, expected: Optional[int]):
    chosen = result_pod(pods)
    if expected is None:
        assert chosen is None
    else:
        assert chosen is pods[expected]
