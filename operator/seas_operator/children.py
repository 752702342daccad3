"""Pure readers of what stage children report: Job/PyTorchJob/TrainJob state, pod results and failures.

The table in ``kinds`` says which reader, result container and leader pod
belong to each kind. A child is ``running`` until its controller marks it finished:

- ``batch/v1`` Job: condition ``Complete`` or ``Failed`` with status ``True``;
  without conditions (e.g. a test playing the job controller), the counts:
  ``succeeded >= completions`` or ``failed > backoffLimit``. The interim
  conditions ``SuccessCriteriaMet``/``FailureTarget`` (Kubernetes 1.31+) are
  not final: pods may still be terminating, so the Job still counts as running.
- ``PyTorchJob`` (``kubeflow.org/v1``): condition ``Succeeded`` or ``Failed``.
- ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``): condition ``Complete`` or ``Failed``.

A stage's result is the termination message of the container that ran it, in
the kind's leader pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Iterable, Mapping, Optional

from seas_runtime.contract import user_error_code

MAX_REASON = 300


class ChildPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"



@dataclass(frozen=True)
class ChildState:
    """Where a child object stands."""

    phase: ChildPhase
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase != ChildPhase.RUNNING


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status") or {}
    return [c for c in (status.get("conditions") or []) if isinstance(c, Mapping)]


def _true(obj: Mapping[str, Any], type_: str) -> Optional[Mapping[str, Any]]:
    return next((c for c in _conditions(obj) if c.get("type") == type_ and str(c.get("status")) == "True"), None)


def _from_conditions(obj: Mapping[str, Any], success: str, failure: str) -> Optional[ChildState]:
    failed = _true(obj, failure)
    if failed is not None:
        return ChildState(ChildPhase.FAILED, str(failed.get("reason") or failure), str(failed.get("message") or ""))
    done = _true(obj, success)
    if done is not None:
        return ChildState(ChildPhase.SUCCEEDED, str(done.get("reason") or success), str(done.get("message") or ""))
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
        return ChildState(ChildPhase.RUNNING, "Finishing")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    completions = _int(spec.get("completions"), 1) if spec.get("completions") is not None else 1
    backoff = _int(spec.get("backoffLimit"), 6) if spec.get("backoffLimit") is not None else 6
    if _int(status.get("succeeded"), 0) >= max(completions, 1):
        return ChildState(ChildPhase.SUCCEEDED, "Completed")
    failed = _int(status.get("failed"), 0)
    if failed > backoff:
        return ChildState(ChildPhase.FAILED, "BackoffLimitExceeded", f"{failed} failed pod(s)")
    return ChildState(ChildPhase.RUNNING)


def pytorchjob_state(obj: Mapping[str, Any]) -> ChildState:
    """State of a Kubeflow ``PyTorchJob``."""
    return _from_conditions(obj, "Succeeded", "Failed") or ChildState(ChildPhase.RUNNING)


def trainjob_state(obj: Mapping[str, Any]) -> ChildState:
    """State of a Kubeflow Trainer v2 ``TrainJob``."""
    return _from_conditions(obj, "Complete", "Failed") or ChildState(ChildPhase.RUNNING)


def suspended(obj: Mapping[str, Any]) -> bool:
    """Whether a child waits in a queue: a suspended Job or TrainJob (Kueue admits it by unsuspending), a PyTorchJob's runPolicy.suspend."""
    spec = obj.get("spec") or {}
    return spec.get("suspend") is True or (spec.get("runPolicy") or {}).get("suspend") is True


def start_time(obj: Mapping[str, Any]) -> str:
    """When the child's controller last started it (``status.startTime``; a Job resets it when unsuspended), or ""."""
    value = (obj.get("status") or {}).get("startTime")
    return value if isinstance(value, str) else ""


def _result_status(pod: Mapping[str, Any], container: str) -> Optional[Mapping[str, Any]]:
    """The container status of the stage container (or the only container)."""
    statuses = [s for s in ((pod.get("status") or {}).get("containerStatuses") or []) if isinstance(s, Mapping)]
    named = next((s for s in statuses if s.get("name") == container), None)
    if named is not None:
        return named
    return statuses[0] if len(statuses) == 1 else None


def _terminated(container_status: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    for where in ("state", "lastState"):
        terminated = (container_status.get(where) or {}).get("terminated")
        if terminated:
            return terminated
    return None


def termination_message(pod: Mapping[str, Any], container: str) -> Optional[str]:
    """The stage container's termination message (``state`` first, then ``lastState``), if any."""
    status = _result_status(pod, container)
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


def pod_failure_reason(pod: Mapping[str, Any], container: str) -> str:
    """Why a stage pod failed or cannot run, in one line ("" when nothing is known).

    ``OOMKilled (exit 137)``, ``Error (exit 3): <last line of the message>``,
    ``ImagePullBackOff: <message>``, ``Evicted: <message>``, ``Unschedulable: <message>``.
    """
    status = pod.get("status") or {}
    stage = _result_status(pod, container)
    if stage is not None:
        terminated = _terminated(stage)
        if terminated and _int(terminated.get("exitCode"), 0) != 0:
            reason = str(terminated.get("reason") or "Error")
            text = f"{reason} (exit {terminated.get('exitCode')})"
            detail = _last_line(str(terminated.get("message") or ""))
            return f"{text}: {detail}" if detail and reason != "OOMKilled" else text
        waiting = (stage.get("state") or {}).get("waiting")
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


# Why a pod that has not started never will without someone acting: a bad image, a missing Secret or
# ConfigMap, a request no node can meet. ContainerCreating and PodInitializing are normal waits.
STUCK_REASONS = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "Unschedulable",
})


def stuck_reason(pod: Mapping[str, Any], container: str) -> str:
    """Why a pod that has not started cannot start ("" when it is starting normally, running or finished)."""
    if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
        return ""
    reason = pod_failure_reason(pod, container)
    return reason if reason.split(":")[0].strip() in STUCK_REASONS else ""


def disrupted(pod: Mapping[str, Any]) -> bool:
    """Whether the pod ended because the cluster took it away (eviction, preemption, a node drain), not by its own fault."""
    status = pod.get("status") or {}
    if status.get("reason") in ("Evicted", "Preempting", "Terminated", "NodeShutdown"):
        return True
    return any(c.get("type") == "DisruptionTarget" and str(c.get("status")) == "True" for c in status.get("conditions") or [] if isinstance(c, Mapping))


def exit_code(pod: Mapping[str, Any], container: str) -> Optional[int]:
    """The stage container's exit code, once it terminated; a user error's own code when torchrun turned it into 1."""
    status = _result_status(pod, container)
    terminated = _terminated(status) if status is not None else None
    if not terminated or terminated.get("exitCode") is None:
        return None
    code = _int(terminated.get("exitCode"), -1)
    message = terminated.get("message")
    marked = user_error_code(message) if code != 0 and isinstance(message, str) else None
    return marked if marked is not None else code


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's controlling ownerReference ({} when it has none)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return {}


def controller_uid(obj: Mapping[str, Any]) -> str:
    """The uid of the object's controlling owner ("" when it has none): only that owner's children and results are trusted."""
    return str(controller_ref(obj).get("uid") or "")


def pod_labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def result_pod(pods: Iterable[Mapping[str, Any]], is_leader: Callable[[Mapping[str, Any]], bool]) -> Optional[Mapping[str, Any]]:
    """The pod whose termination message is the stage result: a leader (see ``kinds``), the most recently created."""
    candidates = [p for p in pods if is_leader(p)]
    if not candidates:
        return None
    return max(candidates, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


__all__ = [
    "ChildPhase", "ChildState", "STUCK_REASONS", "controller_ref", "controller_uid", "disrupted", "exit_code", "job_state",
    "pod_failure_reason", "pod_labels", "pytorchjob_state", "result_pod", "start_time", "stuck_reason", "suspended", "termination_message",
    "trainjob_state",
]
