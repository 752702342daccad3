"""API failures: which are transient, when the user hears of them, and when an evolution turns Degraded."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from seas_operator.troubles import EVENT_EVERY_SECONDS, ApiProblem, classify, respond


def api_exception(status: int, message: str = "boom") -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message": message})
    exc.headers = {"Audit-Id": "0b0e", "Content-Type": "application/json"}
    return exc


@pytest.mark.parametrize("status, transient, reason", [
    (503, True, "APIUnavailable"), (500, True, "APIUnavailable"), (504, True, "APIUnavailable"), (429, True, "APIUnavailable"),
    (409, True, "APIUnavailable"), (403, False, "APIForbidden"), (401, False, "APIUnauthorized"), (422, False, "APIRejected"),
    (404, False, "NotFound"), (400, False, "APIRejected"),
])
def test_http_statuses_are_classified(status, transient, reason):
    problem = classify(api_exception(status, 'admission webhook "x" denied the request'), "create Job a")
    assert (problem.transient, problem.reason, problem.status) == (transient, reason, status)
    # What the user reads: the call and the API's own message, never the HTTP headers.
    assert problem.message.startswith(f"create Job a: HTTP {status}") and "denied the request" in problem.message
    assert "Audit-Id" not in str(problem) and "Content-Type" not in str(problem)


@pytest.mark.parametrize("exc", [
    urllib3.exceptions.ReadTimeoutError(None, "/apis", "Read timed out. (read timeout=30)"),
    urllib3.exceptions.MaxRetryError(None, "/apis", reason="connection refused"),
    TimeoutError("timed out"), ConnectionResetError("reset"),
])
def test_transport_errors_are_transient(exc):
    problem = classify(exc, "list jobs")
    assert problem.transient and problem.reason == "APIUnavailable" and problem.message.startswith("list jobs: ")


UNAVAILABLE = ApiProblem("APIUnavailable", "list jobs: HTTP 503", transient=True, status=503)
FORBIDDEN = ApiProblem("APIForbidden", "create Job: HTTP 403 denied", transient=False, status=403)


def run(problem: ApiProblem, times: list[float], interval: float = 15.0, unavailable_after: float = 300.0):
    trouble, out = None, []
    for now in times:
        response = respond(trouble, problem, now, interval, unavailable_after)
        trouble = response.trouble
        out.append(response)
    return out


def test_a_short_outage_sends_one_event_and_does_not_degrade():
    out = run(UNAVAILABLE, [0, 15, 45, 105, 225])
    assert [r.post_event for r in out] == [True, False, False, False, False]
    assert not any(r.degrade for r in out)
    assert [r.retry_in for r in out] == [15, 30, 60, 120, 240]  # exponential backoff


def test_a_sustained_outage_degrades_and_keeps_reporting_at_a_bounded_rate():
    times = [0.0]
    while times[-1] < 2000:
        times.append(times[-1] + 300)
    out = run(UNAVAILABLE, times)
    assert [r.degrade for r in out][:2] == [False, True]  # degraded once it lasted 300 s
    assert max(r.retry_in for r in out) == 300
    events = [t for t, r in zip(times, out) if r.post_event]
    assert all(b - a >= EVENT_EVERY_SECONDS for a, b in zip(events, events[1:]))


def test_a_permanent_error_degrades_at_once_and_repeats_only_when_it_changes():
    out = run(FORBIDDEN, [0, 15, 45])
    assert [r.degrade for r in out] == [True, True, True]
    assert [r.post_event for r in out] == [True, False, False]
    other = ApiProblem("ChildNameTaken", "Job x exists but is not controlled by this SafetyEvolution", transient=False)
    again = respond(out[-1].trouble, other, 60, 15, 300)
    assert again.post_event  # a different problem is news
