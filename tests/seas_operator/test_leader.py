"""Leader election: the pure Lease decision and bodies by tables, the elector against an in-memory Lease API.

The in-memory API enforces ``resourceVersion`` on updates like the API server, so the
contention tests prove that two candidates cannot both win. The end-to-end test with two
operator processes is ``tests/e2e/test_leader_election.py``.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import pytest
from kubernetes.client.exceptions import ApiException

from seas_operator.cli import build_parser
from seas_operator.leader import (ABSENT, CONFLICT, EXPIRED, FREE, HELD, OURS, LeaderElector, claimed, decide, format_micro_time,
                                  make_identity, parse_micro_time, released)
from seas_operator.operator_main import _StandbyServer, _wait_for_leadership
from seas_operator.settings import SettingsError, load_settings

NOW = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    """A MicroTime ``seconds`` after NOW (negative: before)."""
    return format_micro_time(NOW + timedelta(seconds=seconds))


def lease(holder: Any = "other_1", renew: Optional[str] = None, duration: Any = 15, transitions: Any = 3, **spec: Any) -> dict:
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "seas-operator", "namespace": "seas-system", "resourceVersion": "42", "labels": {"team": "ml"}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renew if renew is not None else at(-1),
                     "acquireTime": at(-100), "leaseTransitions": transitions, **spec}}
    return body


ME = "seas-operator-abc_1234"

# --------------------------------------------------------------------------- decide

DECISIONS = {
    # name: (lease, may_acquire, reason, holder)
    "absent": (None, True, ABSENT, ""),
    "ours, fresh": (lease(holder=ME), True, OURS, ME),
    "ours, long expired": (lease(holder=ME, renew=at(-3600)), True, OURS, ME),
    "held, renewed 1 s ago": (lease(renew=at(-1)), False, HELD, "other_1"),
    "held, renewed exactly one duration ago": (lease(renew=at(-15)), False, HELD, "other_1"),
    "expired just now": (lease(renew=at(-15.001)), True, EXPIRED, "other_1"),
    "expired long ago": (lease(renew=at(-3600)), True, EXPIRED, "other_1"),
    "own duration of the lease counts": (lease(renew=at(-20), duration=30), False, HELD, "other_1"),
    "short lease expired": (lease(renew=at(-2), duration=1), True, EXPIRED, "other_1"),
    "renewTime in the future (clock skew)": (lease(renew=at(5)), False, HELD, "other_1"),
    "released: empty holder": (lease(holder="", renew=at(0)), True, FREE, ""),
    "released: holder missing": ({"metadata": {"resourceVersion": "1"}, "spec": {"renewTime": at(0)}}, True, FREE, ""),
    "no spec at all": ({"metadata": {"resourceVersion": "1"}}, True, FREE, ""),
    "holder but no renewTime": (lease(renew=""), True, EXPIRED, "other_1"),
    "holder, unreadable renewTime": (lease(renew="yesterday"), True, EXPIRED, "other_1"),
    "missing duration: ours (15 s) applies, fresh": (lease(renew=at(-10), duration=None), False, HELD, "other_1"),
    "missing duration: ours (15 s) applies, expired": (lease(renew=at(-16), duration=None), True, EXPIRED, "other_1"),
    "nonsense duration: ours applies": (lease(renew=at(-16), duration="15"), True, EXPIRED, "other_1"),
    "zero duration: ours applies": (lease(renew=at(-10), duration=0), False, HELD, "other_1"),
    "renewTime without fraction (Time, not MicroTime)": (lease(renew="2025-03-01T11:59:59Z"), False, HELD, "other_1"),
    "renewTime with an offset": (lease(renew="2025-03-01T13:59:50.000000+02:00"), False, HELD, "other_1"),
    "a prefix of our identity is someone else": (lease(holder="seas-operator-abc"), False, HELD, "seas-operator-abc"),
}


@pytest.mark.parametrize("name", sorted(DECISIONS))
def test_decide(name):
    body, may, reason, holder = DECISIONS[name]
    decision = decide(body, ME, NOW, default_duration=15)
    assert (decision.may_acquire, decision.reason, decision.holder) == (may, reason, holder)


def test_decide_reports_when_a_held_lease_expires():
    decision = decide(lease(renew=at(-4), duration=15), ME, NOW)
    assert decision.expires == NOW + timedelta(seconds=11)


# --------------------------------------------------------------------------- claimed / released


def test_claim_an_absent_lease():
    body = claimed(None, ME, NOW, 15, "seas-system", "seas-operator")
    assert body == {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "seas-operator", "namespace": "seas-system"},
        "spec": {"holderIdentity": ME, "leaseDurationSeconds": 15, "acquireTime": "2025-03-01T12:00:00.500000Z",
                 "renewTime": "2025-03-01T12:00:00.500000Z", "leaseTransitions": 0},
    }


CLAIMS = {
    # name: (observed lease, transitions after, acquireTime kept)
    "renew our own": (lease(holder=ME, transitions=3), 3, True),
    "take over an expired one": (lease(renew=at(-60), transitions=3), 4, False),
    "take a released one": (lease(holder="", transitions=3), 4, False),
    "transitions missing": (lease(renew=at(-60), transitions=None), 1, False),
    "transitions nonsense": (lease(renew=at(-60), transitions=-2), 1, False),
}


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_claim_an_existing_lease(name):
    observed, transitions, kept = CLAIMS[name]
    before = copy.deepcopy(observed)
    body = claimed(observed, ME, NOW, 10, "seas-system", "seas-operator")
    assert observed == before, "pure: the observed lease is not mutated"
    spec = body["spec"]
    assert spec["holderIdentity"] == ME
    assert spec["leaseDurationSeconds"] == 10
    assert spec["renewTime"] == format_micro_time(NOW)
    assert spec["leaseTransitions"] == transitions
    assert spec["acquireTime"] == (observed["spec"]["acquireTime"] if kept else format_micro_time(NOW))
    # The update is conditional on what was read, and keeps what is not ours.
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["metadata"]["labels"] == {"team": "ml"}


def test_claim_keeps_spec_fields_it_does_not_own():
    body = claimed(lease(renew=at(-60), preferredHolder="x", strategy="OldestEmulationVersion"), ME, NOW, 15, "ns", "seas-operator")
    assert body["spec"]["preferredHolder"] == "x" and body["spec"]["strategy"] == "OldestEmulationVersion"


def test_micro_time_always_has_six_digits():
    assert format_micro_time(datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2025-01-02T03:04:05.000000Z"
    assert format_micro_time(datetime(2025, 1, 2, 5, 4, 5, 7, tzinfo=timezone(timedelta(hours=2)))) == "2025-01-02T03:04:05.000007Z"
    assert parse_micro_time("2025-01-02T03:04:05.000007Z") == datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=timezone.utc)
    assert parse_micro_time("2025-01-02T03:04:05") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_micro_time(None) is None and parse_micro_time("") is None and parse_micro_time(12) is None


def test_release_only_our_own_lease():
    assert released(None, ME, NOW) is None
    assert released(lease(), ME, NOW) is None
    body = released(lease(holder=ME, transitions=3), ME, NOW)
    assert body is not None
    assert body["spec"]["holderIdentity"] == ""
    assert body["spec"]["leaseDurationSeconds"] == 1
    assert body["spec"]["leaseTransitions"] == 3
    assert body["metadata"]["resourceVersion"] == "42"
    assert decide(body, "standby_1", NOW).reason == FREE, "a standby may take a released lease at once"


@pytest.mark.parametrize("environ, prefix", [
    ({"POD_NAME": "seas-operator-7d9f-abcde", "HOSTNAME": "ignored"}, "seas-operator-7d9f-abcde_"),
    ({"HOSTNAME": "host-1"}, "host-1_"),
    ({}, f"{socket.gethostname()}_"),
])
def test_identity(environ, prefix):
    one, two = make_identity(environ), make_identity(environ)
    assert one.startswith(prefix) and two.startswith(prefix)
    assert one != two, "a restarted container is not its old self"


# --------------------------------------------------------------------------- the elector, against an in-memory API


class FakeLeaseApi:
    """The three Lease calls of a CustomObjectsApi, with resourceVersion checks and injectable failures."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.version = 0
        self.lock = threading.Lock()
        self.calls: list[tuple[str, Any]] = []
        self.fail: Optional[Exception] = None  # raised by every call while set
        self.on_call: Callable[[], None] = lambda: None  # e.g. let time pass

    def _check(self, what: str, kwargs: dict) -> None:
        self.calls.append((what, kwargs.get("_request_timeout")))
        self.on_call()
        if self.fail is not None:
            raise self.fail

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        assert (group, version, plural) == ("coordination.k8s.io", "v1", "leases")
        self._check("get", kwargs)
        with self.lock:
            if (namespace, name) not in self.objects:
                raise ApiException(status=404, reason="Not Found")
            return copy.deepcopy(self.objects[(namespace, name)])

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
        self._check("create", kwargs)
        name = body["metadata"]["name"]
        with self.lock:
            if (namespace, name) in self.objects:
                raise ApiException(status=409, reason="AlreadyExists")
            self.version += 1
            stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
            self.objects[(namespace, name)] = stored
            return stored

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        self._check("update", kwargs)
        with self.lock:
            current = self.objects.get((namespace, name))
            if current is None:
                raise ApiException(status=404, reason="Not Found")
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise ApiException(status=409, reason="Conflict")
            self.version += 1
            stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
            self.objects[(namespace, name)] = stored
            return stored

    def holder(self) -> str:
        return self.objects[("ns", "seas-operator")]["spec"]["holderIdentity"]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def elector(api: FakeLeaseApi, identity: str, clock: Optional[Clock] = None, **timings: Any) -> LeaderElector:
    timings = {"lease_seconds": 15, "renew_seconds": 10.0, "retry_seconds": 2.0, **timings}
    return LeaderElector(api, "ns", "seas-operator", identity, clock=clock or Clock(), **timings)


def test_two_candidates_one_leader_and_takeover_after_expiry():
    api, clock = FakeLeaseApi(), Clock()
    a, b = elector(api, "a_1", clock), elector(api, "b_1", clock)
    assert a.try_acquire_or_renew() and a.last.reason == ABSENT
    assert not b.try_acquire_or_renew() and b.last.reason == HELD and b.last.holder == "a_1"
    clock.now += timedelta(seconds=5)
    assert a.try_acquire_or_renew() and a.last.reason == OURS
    clock.now += timedelta(seconds=15)  # a renewed at +5: expires at +20, not yet
    assert not b.try_acquire_or_renew()
    clock.now += timedelta(seconds=1)
    assert b.try_acquire_or_renew() and b.last.reason == EXPIRED
    assert api.holder() == "b_1"
    assert api.objects[("ns", "seas-operator")]["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew() and a.last.reason == HELD, "the old leader sees it lost"


def test_of_two_candidates_that_saw_the_same_expired_lease_only_one_wins():
    api, clock = FakeLeaseApi(), Clock()
    assert elector(api, "dead_1", clock).try_acquire_or_renew()
    clock.now += timedelta(seconds=60)
    a, b = elector(api, "a_1", clock), elector(api, "b_1", clock)
    # Both read the expired lease before either writes: interleave by reading through b's elector first.
    seen_by_b = api.get_namespaced_custom_object("coordination.k8s.io", "v1", "ns", "leases", "seas-operator")
    assert a.try_acquire_or_renew()
    late = claimed(seen_by_b, "b_1", clock.now, 15, "ns", "seas-operator")
    with pytest.raises(ApiException) as conflict:
        api.replace_namespaced_custom_object("coordination.k8s.io", "v1", "ns", "leases", "seas-operator", late)
    assert conflict.value.status == 409
    assert not b.try_acquire_or_renew() and b.last.reason == HELD and b.last.holder == "a_1"
    assert api.holder() == "a_1"


def test_a_lost_race_to_create_is_a_conflict_not_an_error():
    api = FakeLeaseApi()
    a, b = elector(api, "a_1"), elector(api, "b_1")
    original_get = api.get_namespaced_custom_object

    def get_then_a_creates(*args, **kwargs):  # b reads "absent", then a creates before b does
        try:
            return original_get(*args, **kwargs)
        finally:
            api.get_namespaced_custom_object = original_get
            assert a.try_acquire_or_renew()

    api.get_namespaced_custom_object = get_then_a_creates
    assert not b.try_acquire_or_renew()
    assert b.last.reason == CONFLICT
    assert api.holder() == "a_1"


def test_every_call_has_a_timeout_and_an_attempt_keeps_to_its_budget():
    api = FakeLeaseApi()
    ticks = {"now": 100.0}
    api.on_call = lambda: ticks.update(now=ticks["now"] + 1.0)  # every call takes a second
    a = LeaderElector(api, "ns", "seas-operator", "a_1", monotonic=lambda: ticks["now"])
    a.try_acquire_or_renew()  # standby: each call gets the full request timeout
    a.try_acquire_or_renew(timeout=1.5)  # renewal with 1.5 s left: the read gets 1.5 s, the write what is left
    a.try_acquire_or_renew(timeout=0.001)  # nothing left: a floor, not a zero (which would mean "no timeout")
    a.release()
    assert api.calls == [
        ("get", (5.0, 5.0)), ("create", (5.0, 5.0)),
        ("get", (1.5, 1.5)), ("update", (0.5, 0.5)),
        ("get", (0.2, 0.2)), ("update", (0.2, 0.2)),
        ("get", (5.0, 5.0)), ("update", (5.0, 5.0)),
    ]


def test_release_hands_over_at_once_and_only_our_own():
    api, clock = FakeLeaseApi(), Clock()
    a, b = elector(api, "a_1", clock), elector(api, "b_1", clock)
    assert a.try_acquire_or_renew()
    assert not b.release(), "b does not hold it"
    assert a.release()
    assert api.holder() == ""
    assert b.try_acquire_or_renew() and b.last.reason == FREE
    api.fail = ApiException(status=500)
    assert not b.release(), "a failed release only logs: the lease then expires"


def test_acquire_waits_for_the_holder_and_stops_on_request(caplog):
    api = FakeLeaseApi()
    assert elector(api, "a_1").try_acquire_or_renew()
    b = elector(api, "b_1", retry_seconds=0.01, renew_seconds=0.02, lease_seconds=15)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with caplog.at_level("INFO", logger="seas_operator.leader"):
        assert b.acquire(stop) is False
    waiting = [r.getMessage() for r in caplog.records if "waiting for leadership" in r.getMessage()]
    assert len(waiting) == 1, "logged once per holder, not every retry"
    assert "lease ns/seas-operator held by a_1" in waiting[0]


def test_acquire_survives_api_errors():
    api = FakeLeaseApi()
    api.fail = ApiException(status=503)
    b = elector(api, "b_1", retry_seconds=0.01, renew_seconds=0.02, lease_seconds=15)
    threading.Timer(0.1, lambda: setattr(api, "fail", None)).start()
    assert b.acquire(threading.Event()) is True
    assert api.holder() == "b_1"


def run_renewal(e: LeaderElector, seconds: float) -> list[str]:
    lost: list[str] = []
    done = threading.Event()

    def on_lost(reason: str) -> None:
        lost.append(reason)
        done.set()

    thread = e.start_renewing(on_lost)
    done.wait(seconds)
    e.stop_renewing()
    thread.join(2)
    return lost


def test_renewal_keeps_the_lease_fresh():
    api = FakeLeaseApi()
    a = LeaderElector(api, "ns", "seas-operator", "a_1", lease_seconds=15, renew_seconds=0.2, retry_seconds=0.02)
    assert a.try_acquire_or_renew()
    first = api.objects[("ns", "seas-operator")]["spec"]["renewTime"]
    assert run_renewal(a, 0.3) == []
    assert api.objects[("ns", "seas-operator")]["spec"]["renewTime"] > first
    assert api.holder() == "a_1"


def test_renewal_failing_past_the_deadline_loses_leadership():
    api = FakeLeaseApi()
    a = LeaderElector(api, "ns", "seas-operator", "a_1", lease_seconds=15, renew_seconds=0.2, retry_seconds=0.02)
    assert a.try_acquire_or_renew()
    api.fail = ApiException(status=0, reason="connection refused")
    started = time.monotonic()
    lost = run_renewal(a, 5)
    assert len(lost) == 1 and "could not renew lease ns/seas-operator for 0.2s" in lost[0]
    assert 0.2 <= time.monotonic() - started < 2


def _interrupted(api: FakeLeaseApi, clock: Clock, how: str) -> None:
    """What happened to the Lease while its leader was paused for a minute."""
    clock.now += timedelta(seconds=60)
    b = elector(api, "b_1", clock)
    assert b.try_acquire_or_renew()
    if how == "b took it and died":
        clock.now += timedelta(seconds=60)
    elif how == "b took it and released it":
        assert b.release()
    elif how == "deleted":
        del api.objects[("ns", "seas-operator")]


@pytest.mark.parametrize("how, reason", [
    ("b holds it", "lease ns/seas-operator is held by b_1"),
    ("b took it and died", "lease ns/seas-operator is held by b_1"),  # expired, but the leader was not alone: lost
    ("b took it and released it", "lease ns/seas-operator is released"),
    ("deleted", "lease ns/seas-operator is gone"),
])
def test_a_lease_no_longer_ours_loses_leadership_at_once(how, reason):
    api, clock = FakeLeaseApi(), Clock()
    a = LeaderElector(api, "ns", "seas-operator", "a_1", lease_seconds=15, renew_seconds=5, retry_seconds=0.02, clock=clock)
    assert a.try_acquire_or_renew()
    _interrupted(api, clock, how)
    before = copy.deepcopy(api.objects)
    started = time.monotonic()
    lost = run_renewal(a, 5)
    assert lost == [reason]
    assert time.monotonic() - started < 1, "without waiting for the renew deadline"
    assert api.objects == before, "the renewal never takes the Lease back"


def test_stopping_renewal_is_not_a_loss():
    api = FakeLeaseApi()
    a = LeaderElector(api, "ns", "seas-operator", "a_1", lease_seconds=15, renew_seconds=0.05, retry_seconds=0.01)
    assert a.try_acquire_or_renew()
    api.fail = ApiException(status=500)
    thread = a.start_renewing(lambda reason: pytest.fail(f"lost: {reason}"))
    a.stop_renewing()
    thread.join(2)
    assert not thread.is_alive()


def test_timings_must_let_the_leader_give_up_before_a_standby_takes_over():
    with pytest.raises(ValueError):
        LeaderElector(FakeLeaseApi(), "ns", "l", "a", lease_seconds=10, renew_seconds=10, retry_seconds=2)
    with pytest.raises(SettingsError, match="retry < renew < lease"):
        load_settings({"SEAS_LEADER_LEASE_SECONDS": "8", "SEAS_LEADER_RENEW_SECONDS": "10"})
    with pytest.raises(SettingsError, match="leader_lease_seconds"):
        load_settings({"SEAS_LEADER_LEASE_SECONDS": "7.5"})


def test_settings_from_the_environment():
    defaults = load_settings({})
    assert (defaults.leader_namespace, defaults.leader_lease_name) == ("default", "seas-operator")
    assert (defaults.leader_lease_seconds, defaults.leader_renew_seconds, defaults.leader_retry_seconds) == (15, 10.0, 2.0)
    settings = load_settings({"POD_NAMESPACE": "seas-system", "SEAS_LEADER_LEASE": "seas-operator-b", "SEAS_LEADER_LEASE_SECONDS": "6",
                              "SEAS_LEADER_RENEW_SECONDS": "4", "SEAS_LEADER_RETRY_SECONDS": "0.5"})
    assert (settings.leader_namespace, settings.leader_lease_name) == ("seas-system", "seas-operator-b")
    assert (settings.leader_lease_seconds, settings.leader_renew_seconds, settings.leader_retry_seconds) == (6, 4.0, 0.5)


def test_leader_election_is_on_unless_turned_off():
    parser = build_parser()
    assert parser.parse_args(["operator"]).no_leader_election is False
    assert parser.parse_args(["operator", "--no-leader-election"]).no_leader_election is True


# --------------------------------------------------------------------------- the standby's endpoints


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_standby_answers_probes_and_frees_its_port():
    port = _free_port()
    server = _StandbyServer(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200 and response.read() == b"ok\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert response.status == 200 and "seas_" not in body, "a standby exports no status metrics (they would be doubled)"
    finally:
        server.close()
    # kopf's liveness endpoint (or the metrics server) binds the same port right after.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("0.0.0.0", port))


class FakeElector:
    """Stands for LeaderElector in the standby phase of ``seas operator``."""

    where = "ns/seas-operator"

    def __init__(self, wins: bool) -> None:
        self.wins, self.released = wins, False

    def acquire(self, stop: threading.Event) -> bool:
        stop.wait(5)  # SIGTERM arrives meanwhile
        return self.wins

    def release(self) -> bool:
        self.released = True
        return True


@pytest.mark.parametrize("wins", [False, True])
def test_sigterm_while_standby_stops_without_acting(wins):
    before = signal.getsignal(signal.SIGTERM)
    fake = FakeElector(wins)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    settings = load_settings({}, health_port=_free_port(), metrics_port=_free_port())
    assert _wait_for_leadership(fake, settings) is False
    assert fake.released is wins, "a Lease won as the signal came is handed back"
    assert signal.getsignal(signal.SIGTERM) is before
