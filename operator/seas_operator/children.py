"""Pure readers of what stage children report: Job/PyTorchJob/TrainJob state, pod results and failures.

A child is ``running`` until its controller marks it finished:

- ``batch/v1`` Job: condition ``Complete`` or ``Failed`` with status ``True``;
  without conditions (e.g. a test playing the job controller), the counts:
  ``succeeded >= completions`` or ``failed > backoffLimit``. The interim
  conditions ``SuccessCriteriaMet``/``FailureTarget`` (Kubernetes 1.31+) are
  not final: pods may still be terminating, so the Job still counts as running.
- ``PyTorchJob`` (``kubeflow.org/v1``): condition ``Succeeded`` or ``Failed``.
- ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``): condition ``Complete`` or ``Failed``.

A stage's result is the termination message of the container that ran it
(``stage`` in a Job, ``pytorch`` in a PyTorchJob, ``node`` in a TrainJob).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"

RESULT_CONTAINERS = ("stage", "pytorch", "node")
MAX_REASON = 300


@dataclass(frozen=True)
class ChildState:
    """Where a child object stands."""

    phase: str  # "running" | "succeeded" | "failed"
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase != RUNNING


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status") or {}
    return [c for c in (status.get("conditions") or []) if isinstance(c, Mapping)]


def _true(obj: Mapping[str, Any], type_: str) -> Optional[Mapping[str, Any]]:
    return next((c for c in _conditions(obj) if c.get("type") == type_ and str(c.get("status")) == "True"), None)


def _from_conditions(obj: Mapping[str, Any], success: str, failure: str) -> Optional[ChildState]:
    failed = _true(obj, failure)
    if failed is not None:
        return ChildState(FAILED, str(failed.get("reason") or failure), str(failed.get("message") or ""))
    done = _true(obj, success)
    if done is not None:
        return ChildState(SUCCEEDED, str(done.get("reason") or success), str(done.get("message") or ""))
    return None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def job_state(obj: Mapping[str, Any]) -> ChildState:
    """State of a ``batch/v1`` Job."""
    state = _from_conditions(obj, "Complete", "Failed")
    if state is not None:
        return state
    if _true(obj, "FailureTarget") or _true(obj, "SuccessCriteriaMet"):
        return ChildState(RUNNING, "Finishing")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    completions = _int(spec.get("completions"), 1) if spec.get("completions") is not None else 1
    backoff = _int(spec.get("backoffLimit"), 6) if spec.get("backoffLimit") is not None else 6
    if _int(status.get("succeeded"), 0) >= max(completions, 1):
        return ChildState(SUCCEEDED, "Completed")
    failed = _int(status.get("failed"), 0)
    if failed > backoff:
        return ChildState(FAILED, "BackoffLimitExceeded", f"{failed} failed pod(s)")
    return ChildState(RUNNING)


def pytorchjob_state(obj: Mapping[str, Any]) -> ChildState:
    """State of a Kubeflow ``PyTorchJob``."""
    return _from_conditions(obj, "Succeeded", "Failed") or ChildState(RUNNING)


def trainjob_state(obj: Mapping[str, Any]) -> ChildState:
    """State of a Kubeflow Trainer v2 ``TrainJob``."""
    return _from_conditions(obj, "Complete", "Failed") or ChildState(RUNNING)


_READERS = {"Job": job_state, "PyTorchJob": pytorchjob_state, "TrainJob": trainjob_state}


def child_state(kind: str, obj: Mapping[str, Any]) -> ChildState:
    """State of a child of ``kind`` (``Job``, ``PyTorchJob`` or ``TrainJob``)."""
    try:
        reader = _READERS[kind]
    except KeyError:
        raise ValueError(f"unknown child kind {kind!r}; known: {', '.join(_READERS)}") from None
    return reader(obj)


def _result_status(pod: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The container status of the stage container (or the only container)."""
    statuses = [s for s in ((pod.get("status") or {}).get("containerStatuses") or []) if isinstance(s, Mapping)]
    named = next((s for s in statuses if s.get("name") in RESULT_CONTAINERS), None)
    if named is not None:
        return named
    return statuses[0] if len(statuses) == 1 else None


def _terminated(container_status: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    for where in ("state", "lastState"):
        terminated = (container_status.get(where) or {}).get("terminated")
        if terminated:
            return terminated
    return None


def termination_message(pod: Mapping[str, Any]) -> Optional[str]:
    """The stage container's termination message (``state`` first, then ``lastState``), if any."""
    status = _result_status(pod)
    if status is None:
        return None
    terminated = _terminated(status)
    if not terminated:
        return None
    message = terminated.get("message")
    return message if isinstance(message, str) and message.strip() else None


def _last_line(text: str) -> str:
    """The most telling line of a message: with FallbackToLogsOnError it is the log tail, so the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:MAX_REASON] if lines else ""


def pod_failure_reason(pod: Mapping[str, Any]) -> str:
    """Why a stage pod failed or cannot run, in one line ("" when nothing is known).

    ``OOMKilled (exit 137)``, ``Error (exit 3): <last line of the message>``,
    ``ImagePullBackOff: <message>``, ``Evicted: <message>``, ``Unschedulable: <message>``.
    """
    status = pod.get("status") or {}
    container = _result_status(pod)
    if container is not None:
        terminated = _terminated(container)
        if terminated and _int(terminated.get("exitCode"), 0) != 0:
            reason = str(terminated.get("reason") or "Error")
            text = f"{reason} (exit {terminated.get('exitCode')})"
            detail = _last_line(str(terminated.get("message") or ""))
            return f"{text}: {detail}" if detail and reason != "OOMKilled" else text
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "", "ContainerCreating", "PodInitializing"):
            detail = _last_line(str(waiting.get("message") or ""))
            return f"{waiting['reason']}: {detail}" if detail else str(waiting["reason"])
    if status.get("reason"):
        detail = _last_line(str(status.get("message") or ""))
        return f"{status['reason']}: {detail}" if detail else str(status["reason"])
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            detail = _last_line(str(cond.get("message") or ""))
            return f"{cond['reason']}: {detail}" if detail else str(cond["reason"])
    if status.get("phase") == "Failed":
        return "Failed"
    return ""


def _is_leader(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    replica = str(labels.get("training.kubeflow.org/replica-type", "")).lower()
    if replica:
        return replica == "master"
    if "jobset.sigs.k8s.io/job-index" in labels:
        return str(labels.get("jobset.sigs.k8s.io/job-index")) == "0" and str(labels.get("batch.kubernetes.io/job-completion-index", "0")) == "0"
    return True


def result_pod(pods: Iterable[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The pod whose termination message is the stage result.

    A Job's pod; a PyTorchJob's Master; a TrainJob's first node (JobSet job
    index 0, completion index 0). Among several candidates (a replaced pod),
    the most recently created.
    """
    candidates = [p for p in pods if _is_leader(p)]
    if not candidates:
        return None
    return max(candidates, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


__all__ = [
    "ChildState", "FAILED", "RESULT_CONTAINERS", "RUNNING", "SUCCEEDED", "child_state", "job_state", "pod_failure_reason",
    "pytorchjob_state", "result_pod", "termination_message", "trainjob_state",
]
