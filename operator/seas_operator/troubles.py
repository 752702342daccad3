"""What the shell does when a Kubernetes API call fails: classify the error, back off, and decide when to tell.

Pure: the shell keeps one :class:`Trouble` per object while its reconciles fail
and asks :func:`respond` what to do after each failure.

- A transient failure (timeout, connection refused, 5xx, 429, a conflict) is
  retried with exponential backoff. The user hears of it through a Warning
  Event at most every ``EVENT_EVERY_SECONDS``, and the object turns ``Degraded``
  (reason ``APIUnavailable``) only when failures have lasted
  ``OperatorSettings.api_unavailable_seconds``: a blip must not page anyone.
- A permanent failure (403 from RBAC or a webhook, 422, a child name taken by
  an object this evolution does not own, a kind the cluster does not serve)
  degrades the object at once with its own reason, and is retried with the same
  backoff, since a fix elsewhere (RBAC, a webhook, installing Kubeflow) needs
  no edit of the object.

``InvalidSpec`` is never chosen here: only the spec's own validation says that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

# HTTP statuses that say "try again": the request may succeed unchanged later.
TRANSIENT_STATUSES = frozenset({0, 408, 409, 425, 429, 500, 502, 503, 504})
EVENT_EVERY_SECONDS = 600.0
MAX_MESSAGE = 300


class ApiProblem(Exception):
    """A failed API call, in words a user can act on (no HTTP headers)."""

    def __init__(self, reason: str, message: str, transient: bool, status: int = 0) -> None:
        super().__init__(message)
        self.reason, self.message, self.transient, self.status = reason, message[:MAX_MESSAGE], transient, status

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _status_message(body: Any, fallback: str) -> str:
    """The ``message`` of a Kubernetes Status body, else ``fallback``."""
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    return str(message or fallback or "no message").splitlines()[0]


def classify(exc: BaseException, call: str) -> ApiProblem:
    """An API exception (or a transport error) as an :class:`ApiProblem`; ``call`` says what was attempted."""
    if isinstance(exc, ApiProblem):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "body"):  # kubernetes.client.ApiException, without its headers
        message = f"{call}: HTTP {status} {_status_message(getattr(exc, 'body', None), str(getattr(exc, 'reason', '') or ''))}"
        if status in TRANSIENT_STATUSES:
            return ApiProblem("APIUnavailable", message, transient=True, status=status)
        reason = {401: "APIUnauthorized", 403: "APIForbidden", 404: "NotFound", 422: "APIRejected"}.get(status, "APIRejected")
        return ApiProblem(reason, message, transient=False, status=status)
    # urllib3 timeouts and connection errors, socket errors: the API server did not answer in time.
    return ApiProblem("APIUnavailable", f"{call}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}", transient=True)


@dataclass(frozen=True)
class Trouble:
    """An object's current run of failed reconciles."""

    since: float  # when the first failure of this run happened (monotonic seconds)
    failures: int = 0
    last_event: Optional[float] = None  # when a Warning Event last went out
    last_message: str = ""


@dataclass(frozen=True)
class Response:
    """What the shell does after a failure."""

    trouble: Trouble
    retry_in: float  # seconds before the object is reconciled again (events on it may come sooner)
    post_event: bool  # post a Warning Event with the problem
    degrade: bool  # set Degraded with the problem's reason


def respond(previous: Optional[Trouble], problem: ApiProblem, now: float, interval: float, unavailable_after: float,
            max_backoff: float = 300.0) -> Response:
    """The response to one more failed reconcile of an object (``previous`` is None after a success)."""
    trouble = previous or Trouble(since=now)
    failures = trouble.failures + 1
    retry_in = min(interval * 2 ** (failures - 1), max(max_backoff, interval))
    new_message = problem.message != trouble.last_message
    quiet_long_enough = trouble.last_event is None or now - trouble.last_event >= EVENT_EVERY_SECONDS
    # One Event per EVENT_EVERY_SECONDS, and another at once when a permanent problem changes; transient trouble
    # degrades the object only once it is sustained.
    post_event = quiet_long_enough or (new_message and not problem.transient)
    degrade = not problem.transient or now - trouble.since >= unavailable_after
    return Response(
        trouble=Trouble(since=trouble.since, failures=failures, last_event=now if post_event else trouble.last_event, last_message=problem.message),
        retry_in=retry_in, post_event=post_event, degrade=degrade,
    )


__all__ = ["ApiProblem", "EVENT_EVERY_SECONDS", "Response", "TRANSIENT_STATUSES", "Trouble", "classify", "respond"]
