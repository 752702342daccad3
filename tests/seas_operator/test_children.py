"""Reading what stage children report: object state, termination messages, pod failure reasons."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from seas_operator.children import (
    ChildPhase,
    ChildState,
    controller_uid,
    exit_code,
    job_state,
    pod_failure_reason,
    pytorchjob_state,
    stuck_reason,
    termination_message,
    trainjob_state,
)
from seas_operator.kinds import kind_named


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
        (obj(), ChildState(ChildPhase.RUNNING)),
        (obj([]), ChildState(ChildPhase.RUNNING)),
        (obj(active=1), ChildState(ChildPhase.RUNNING)),
        (obj([cond("Complete", reason="CompletionsReached")], succeeded=1), ChildState(ChildPhase.SUCCEEDED, "CompletionsReached")),
        (obj([cond("Complete")]), ChildState(ChildPhase.SUCCEEDED, "Complete")),
        (obj([cond("Complete", "False")]), ChildState(ChildPhase.RUNNING)),
        (obj([cond("Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline")], failed=1),
         ChildState(ChildPhase.FAILED, "DeadlineExceeded", "Job was active longer than specified deadline")),
        (obj([cond("Failed", reason="BackoffLimitExceeded")]), ChildState(ChildPhase.FAILED, "BackoffLimitExceeded")),
        (obj([cond("Complete"), cond("Failed", reason="PodFailurePolicy")]), ChildState(ChildPhase.FAILED, "PodFailurePolicy")),
        # Kubernetes 1.31+: interim conditions while pods terminate are not final.
        (obj([cond("FailureTarget", reason="BackoffLimitExceeded")], failed=1), ChildState(ChildPhase.RUNNING, "Finishing")),
        (obj([cond("SuccessCriteriaMet")], succeeded=1), ChildState(ChildPhase.RUNNING, "Finishing")),
        (obj([cond("Suspended")]), ChildState(ChildPhase.RUNNING)),
        # Without conditions (a test playing the job controller): the counts.
        (obj(succeeded=1), ChildState(ChildPhase.SUCCEEDED, "Completed")),
        (obj(failed=1), ChildState(ChildPhase.FAILED, "BackoffLimitExceeded", "1 failed pod(s)")),
        (obj(spec={"backoffLimit": 2}, failed=2), ChildState(ChildPhase.RUNNING)),
        (obj(spec={"backoffLimit": 2}, failed=3), ChildState(ChildPhase.FAILED, "BackoffLimitExceeded", "3 failed pod(s)")),
        ({"spec": {}, "status": {"failed": 1}}, ChildState(ChildPhase.RUNNING)),  # default backoffLimit is 6
        (obj(spec={"completions": 2}, succeeded=1), ChildState(ChildPhase.RUNNING)),
    ],
)
def test_job_state(body: dict, expected: ChildState):
    assert job_state(body) == expected
    assert kind_named("Job").read_state(body) == expected


@pytest.mark.parametrize(
    "conditions, expected",
    [
        (None, ChildState(ChildPhase.RUNNING)),
        ([cond("Created", reason="PyTorchJobCreated")], ChildState(ChildPhase.RUNNING)),
        ([cond("Created"), cond("Running", reason="PyTorchJobRunning")], ChildState(ChildPhase.RUNNING)),
        ([cond("Created"), cond("Running"), cond("Restarting")], ChildState(ChildPhase.RUNNING)),
        ([cond("Created"), cond("Running", "False"), cond("Succeeded", reason="PyTorchJobSucceeded", message="PyTorchJob x is successfully completed.")],
         ChildState(ChildPhase.SUCCEEDED, "PyTorchJobSucceeded", "PyTorchJob x is successfully completed.")),
        ([cond("Created"), cond("Running", "False"), cond("Failed", reason="PyTorchJobFailed", message="PyTorchJob x is failed because 1 Master replica(s) failed.")],
         ChildState(ChildPhase.FAILED, "PyTorchJobFailed", "PyTorchJob x is failed because 1 Master replica(s) failed.")),
        ([cond("Succeeded", "False")], ChildState(ChildPhase.RUNNING)),
        ([cond("Suspended")], ChildState(ChildPhase.RUNNING)),
    ],
)
def test_pytorchjob_state(conditions, expected):
    body = obj(conditions)
    assert pytorchjob_state(body) == expected
    assert kind_named("PyTorchJob").read_state(body) == expected


@pytest.mark.parametrize(
    "conditions, expected",
    [
        (None, ChildState(ChildPhase.RUNNING)),
        ([cond("Suspended", "False", reason="Resumed")], ChildState(ChildPhase.RUNNING)),
        ([cond("Complete", reason="JobsCompleted", message="jobset completed successfully")], ChildState(ChildPhase.SUCCEEDED, "JobsCompleted", "jobset completed successfully")),
        ([cond("Failed", reason="FailedJobs", message="jobset failed")], ChildState(ChildPhase.FAILED, "FailedJobs", "jobset failed")),
        ([cond("Failed", reason="DeadlineExceeded")], ChildState(ChildPhase.FAILED, "DeadlineExceeded")),
        ([cond("Complete", "False")], ChildState(ChildPhase.RUNNING)),
    ],
)
def test_trainjob_state(conditions, expected):
    body = obj(conditions)
    assert trainjob_state(body) == expected
    assert kind_named("TrainJob").read_state(body) == expected


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="MPIJob"):
        kind_named("MPIJob")


def test_finished_property():
    assert not ChildState(ChildPhase.RUNNING).finished
    assert ChildState(ChildPhase.SUCCEEDED).finished and ChildState(ChildPhase.FAILED).finished


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
    "body, container_name, expected",
    [
        (pod(container("stage", terminated(0, message=RESULT)), phase="Succeeded"), "stage", RESULT),
        (pod(container("pytorch", terminated(0, message=RESULT)), phase="Succeeded"), "pytorch", RESULT),
        (pod(container("node", terminated(0, message=RESULT)), phase="Succeeded"), "node", RESULT),
        (pod(container("istio-proxy", terminated(0, message="sidecar")), container("stage", terminated(0, message=RESULT))), "stage", RESULT),
        (pod(container("pytorch", terminated(0, message="other")), container("stage", terminated(0, message=RESULT))), "stage", RESULT),
        (pod(container("stage", {"running": {}}, last=terminated(0, message=RESULT))), "stage", RESULT),
        (pod(container("only", terminated(0, message=RESULT))), "stage", RESULT),  # a single container, whatever its name
        (pod(container("stage", terminated(0))), "stage", None),
        (pod(container("stage", terminated(0, message="  \n"))), "stage", None),
        (pod(container("stage", {"running": {"startedAt": "2025-01-01T00:00:00Z"}})), "stage", None),
        (pod(container("a", terminated(0, message="x")), container("b", terminated(0, message="y"))), "stage", None),
        (pod(), "stage", None),
        ({"metadata": {}}, "stage", None),
    ],
)
def test_termination_message(body: dict, container_name: str, expected: Optional[str]):
    assert termination_message(body, container_name) == expected


LOG_TAIL = "2025 INFO loading model\nTraceback (most recent call last):\n  File x\nseas-runtime: attack failed: model 'x' not found\n"


@pytest.mark.parametrize(
    "body, expected",
    [
        (pod(container("stage", terminated(137, "OOMKilled")), phase="Failed"), "OOMKilled (exit 137)"),
        (pod(container("stage", terminated(137, "OOMKilled", "log tail")), phase="Failed"), "OOMKilled (exit 137)"),
        (pod(container("stage", terminated(3, "Error", LOG_TAIL)), phase="Failed"), "Error (exit 3): seas-runtime: attack failed: model 'x' not found"),
        (pod(container("stage", terminated(1, "Error", "x" * 1000)), phase="Failed"), "Error (exit 1): " + "x" * 300),
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
    assert pod_failure_reason(body, "stage") == expected


def waiting(reason: str, message: str = "") -> dict:
    return {"status": {"phase": "Pending", "containerStatuses": [{"name": "stage", "state": {"waiting": {"reason": reason, "message": message}}}]}}


@pytest.mark.parametrize("pod, expected", [
    (waiting("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x:typo"'), 'ImagePullBackOff: Back-off pulling image "ghcr.io/x:typo"'),
    (waiting("ErrImagePull"), "ErrImagePull"),
    (waiting("InvalidImageName", "couldn't parse image"), "InvalidImageName: couldn't parse image"),
    (waiting("CreateContainerConfigError", 'secret "hf-token" not found'), 'CreateContainerConfigError: secret "hf-token" not found'),
    ({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                     "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}},
     "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
    (waiting("ContainerCreating"), ""),  # a normal start
    ({"status": {"phase": "Pending"}}, ""),
    ({"status": {"phase": "Running", "containerStatuses": [{"name": "stage", "state": {"running": {}}}]}}, ""),
    ({"status": {"phase": "Failed", "containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 1}}}]}}, ""),
])
def test_stuck_reason(pod, expected):
    assert stuck_reason(pod, "stage") == expected


@pytest.mark.parametrize("pod, expected", [
    ({"status": {"containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 3}}}]}}, 3),
    ({"status": {"containerStatuses": [{"name": "stage", "lastState": {"terminated": {"exitCode": 137}}, "state": {"waiting": {}}}]}}, 137),
    ({"status": {"containerStatuses": [{"name": "stage", "state": {"running": {}}}]}}, None),
    ({"status": {}}, None),
    # torchrun exits 1 whatever its worker's code; the user error's code travels in the termination message.
    ({"status": {"containerStatuses": [{"name": "stage", "state": {"terminated": {
        "exitCode": 1, "message": "seas-runtime exit 3: seas-runtime: train-target failed: model 'x' not found"}}}]}}, 3),
    ({"status": {"containerStatuses": [{"name": "stage", "state": {"terminated": {
        "exitCode": 1, "message": "seas-runtime exit 7: not one of ours"}}}]}}, 1),
    ({"status": {"containerStatuses": [{"name": "stage", "state": {"terminated": {
        "exitCode": 1, "message": "Traceback ...\nseas-runtime exit 3: only at the start counts"}}}]}}, 1),
])
def test_exit_code(pod, expected):
    assert exit_code(pod, "stage") == expected


@pytest.mark.parametrize("refs, expected", [
    ([{"kind": "SafetyEvolution", "uid": "u1", "controller": True}], "u1"),
    ([{"kind": "Other", "uid": "u0"}, {"kind": "SafetyEvolution", "uid": "u1", "controller": True}], "u1"),
    ([{"kind": "SafetyEvolution", "uid": "u1"}], ""),  # an owner that does not control it: not trusted
    ([], ""),
])
def test_controller_uid(refs, expected):
    assert controller_uid({"metadata": {"ownerReferences": refs}}) == expected
