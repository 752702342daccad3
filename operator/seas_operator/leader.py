"""Leader election over a ``coordination.k8s.io/v1`` Lease: of several operator replicas, exactly one acts.

The semantics are client-go's (``k8s.io/client-go/tools/leaderelection``):

- ``spec.holderIdentity`` names the leader, ``spec.renewTime`` (a MicroTime) says when
  it last proved it is alive, ``spec.leaseDurationSeconds`` how long that proof holds,
  ``spec.acquireTime`` when it took the Lease and ``spec.leaseTransitions`` how often
  the holder changed.
- A candidate may write the Lease when it is absent (create), held by itself (renew),
  free (empty holder: released on a clean shutdown) or expired
  (``renewTime + leaseDurationSeconds < now``). Writes are a create or an update that
  carries the ``resourceVersion`` it read, so of two candidates that saw the same
  expired Lease only one write succeeds; the other gets 409 Conflict and stays standby.
- The leader renews every retry period. When no renewal succeeded within the renew
  deadline (shorter than the lease duration, so it gives up before anyone may take
  over), or another holder shows up, leadership is lost and ``on_lost`` runs: the
  operator exits (as controller-runtime does), because a process that cannot prove it
  leads must stop acting at once, and a restart as a standby is the simplest sure way.
- On a clean shutdown the leader releases the Lease (empty holder) so that a standby
  takes over at its next attempt instead of after the lease duration.

``decide``, ``claimed`` and ``released`` are pure functions of (Lease dict, identity,
now) and are table-tested; ``LeaderElector`` is the thin shell that makes the API
calls, each with a timeout. The Lease travels as a plain dict through the generic
custom-objects endpoints (as ``kube`` does for Jobs): the typed ``V1Lease`` model
writes a MicroTime without its fraction when the microseconds are 0, which the API
server refuses, while here every time is written as ``…T…:…:….ffffffZ``.

Expiry compares the holder's ``renewTime`` with this process's clock, so clock skew
between nodes shifts the failover time by the skew (nodes are assumed NTP-synced).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Optional

import kubernetes
from kubernetes.client.exceptions import ApiException

from .kube import load_client_config

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"
REQUEST_TIMEOUT = 5.0  # seconds, connect and read, for every Lease call
MIN_REQUEST_TIMEOUT = 0.2

# Why a candidate may or may not write the Lease (Decision.reason).
ABSENT, OURS, FREE, EXPIRED, HELD, CONFLICT = "absent", "ours", "free", "expired", "held", "conflict"

log = logging.getLogger("seas_operator.leader")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def format_micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: Any) -> Optional[datetime]:
    """A MicroTime (or Time) string as an aware datetime; None when missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Decision:
    """What a candidate saw in the Lease: whether it may write it now, why, and who holds it until when."""

    may_acquire: bool
    reason: str
    holder: str = ""
    expires: Optional[datetime] = None


def _spec(lease: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    spec = (lease or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _duration(spec: Mapping[str, Any], default: int) -> int:
    value = spec.get("leaseDurationSeconds")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def decide(lease: Optional[Mapping[str, Any]], identity: str, now: datetime, default_duration: int = 15) -> Decision:
    """May ``identity`` take or renew this Lease at ``now``? (``lease`` is None when it does not exist.)"""
    if lease is None:
        return Decision(True, ABSENT)
    spec = _spec(lease)
    holder = spec.get("holderIdentity") or ""
    if not isinstance(holder, str):
        holder = str(holder)
    if holder == identity:
        return Decision(True, OURS, holder)
    if not holder:
        return Decision(True, FREE)
    renewed = parse_micro_time(spec.get("renewTime"))
    if renewed is None:
        # A holder that never wrote a renewal time follows no protocol we can wait on; taking it
        # over is safe because the write is still guarded by the resourceVersion.
        return Decision(True, EXPIRED, holder)
    expires = renewed + timedelta(seconds=_duration(spec, default_duration))
    if expires < now:
        return Decision(True, EXPIRED, holder, expires)
    return Decision(False, HELD, holder, expires)


def claimed(lease: Optional[Mapping[str, Any]], identity: str, now: datetime, duration: int, namespace: str, name: str) -> dict[str, Any]:
    """The Lease body that takes (or renews) it for ``identity``; an update carries the resourceVersion read."""
    body: dict[str, Any] = copy.deepcopy(dict(lease)) if lease is not None else {}
    body["apiVersion"], body["kind"] = f"{GROUP}/{VERSION}", "Lease"
    meta = body.setdefault("metadata", {})
    meta["name"], meta["namespace"] = name, namespace
    old = _spec(lease)
    spec = dict(old)  # fields we do not own (e.g. preferredHolder, strategy) stay as they are
    ours = lease is not None and old.get("holderIdentity") == identity
    transitions = old.get("leaseTransitions")
    transitions = transitions if isinstance(transitions, int) and not isinstance(transitions, bool) and transitions >= 0 else 0
    spec.update({
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": old.get("acquireTime") if ours and old.get("acquireTime") else format_micro_time(now),
        "renewTime": format_micro_time(now),
        # A new Lease starts at 0; every change of holder (a release included) counts one.
        "leaseTransitions": transitions if ours or lease is None else transitions + 1,
    })
    body["spec"] = spec
    return body


def released(lease: Optional[Mapping[str, Any]], identity: str, now: datetime) -> Optional[dict[str, Any]]:
    """The Lease body that gives it up (empty holder, as client-go); None when ``identity`` does not hold it."""
    if lease is None or _spec(lease).get("holderIdentity") != identity:
        return None
    body = copy.deepcopy(dict(lease))
    spec = dict(_spec(lease))
    spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": format_micro_time(now), "renewTime": format_micro_time(now)})
    body["spec"] = spec
    return body


def make_identity(environ: Mapping[str, str]) -> str:
    """``<pod name>_<random>``: the pod name says who leads; the suffix tells a restarted container from its old self."""
    pod = environ.get("POD_NAME") or environ.get("HOSTNAME") or socket.gethostname() or "seas-operator"
    return f"{pod}_{uuid.uuid4().hex[:8]}"


def lease_api() -> Any:
    """A CustomObjectsApi for Lease calls: in-cluster credentials, else kubeconfig; no hidden retries."""
    load_client_config()
    config = kubernetes.client.Configuration.get_default_copy()
    # One HTTP try per attempt: the election loops are the retry, and their deadlines must hold.
    config.retries = False
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))


class LeaderElector:
    """Takes, renews and releases one Lease for one identity; ``api`` is a ``CustomObjectsApi``."""

    def __init__(self, api: Any, namespace: str, name: str, identity: str, lease_seconds: int = 15, renew_seconds: float = 10.0,
                 retry_seconds: float = 2.0, clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        if not retry_seconds < renew_seconds < lease_seconds:
            raise ValueError("leader election needs retry < renew < lease seconds")
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_seconds, self.retry_seconds = lease_seconds, renew_seconds, retry_seconds
        self.clock, self.monotonic, self.request_timeout = clock, monotonic, request_timeout
        self.last: Optional[Decision] = None  # the latest observation, for logs and the renew loop
        self.renewed_at: Optional[float] = None  # monotonic time of our latest successful write
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def where(self) -> str:
        """``<namespace>/<name>`` of the Lease, for messages."""
        return f"{self.namespace}/{self.name}"

    def _timeout(self, deadline: Optional[float]) -> tuple[float, float]:
        """(connect, read) seconds for one call: the usual timeout, or less when the attempt's deadline is nearer."""
        seconds = self.request_timeout
        if deadline is not None:
            seconds = max(MIN_REQUEST_TIMEOUT, min(seconds, deadline - self.monotonic()))
        return (seconds, seconds)

    def _read(self, deadline: Optional[float]) -> Optional[dict[str, Any]]:
        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, _request_timeout=self._timeout(deadline))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def try_acquire_or_renew(self, timeout: Optional[float] = None, renew_only: bool = False) -> bool:
        """One attempt: read the Lease, and write it when ``decide`` allows. True when we hold it now.

        ``timeout`` bounds the whole attempt (read and write together), else each call gets the
        usual request timeout. ``renew_only``: write only a Lease that is still ours. The leader
        renews that way: a Lease that someone else held (or released, or deleted) since our last
        renewal means we were not the only one acting, so leadership is lost even if the Lease
        could be taken again.
        """
        deadline = None if timeout is None else self.monotonic() + timeout
        lease = self._read(deadline)
        now = self.clock()
        decision = decide(lease, self.identity, now, self.lease_seconds)
        self.last = decision
        if not decision.may_acquire or (renew_only and decision.reason != OURS):
            return False
        body = claimed(lease, self.identity, now, self.lease_seconds, self.namespace, self.name)
        try:
            if lease is None:
                self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=self._timeout(deadline))
            else:
                self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, body,
                                                          _request_timeout=self._timeout(deadline))
        except ApiException as exc:
            if exc.status == 409:  # another candidate wrote between our read and our write: it won
                self.last = Decision(False, CONFLICT, decision.holder, decision.expires)
                return False
            raise
        self.renewed_at = self.monotonic()
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until we hold the Lease (True) or ``stop`` is set (False); logs who holds it meanwhile."""
        reported: Optional[str] = None
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("acquired leadership of lease %s as %s (%s)", self.where, self.identity, self.last.reason if self.last else "")
                    return True
            except Exception as exc:  # noqa: BLE001 - the API may be down for a while; a standby just tries again
                log.warning("cannot read or write lease %s: %s", self.where, exc)
            holder = self.last.holder if self.last else ""
            if self.last and self.last.reason == HELD and holder != reported:
                expires = f" until {format_micro_time(self.last.expires)} unless renewed" if self.last.expires else ""
                log.info("waiting for leadership of lease %s held by %s%s", self.where, holder or "another candidate", expires)
                reported = holder
            stop.wait(self.retry_seconds)
        return False

    def start_renewing(self, on_lost: Callable[[str], None]) -> threading.Thread:
        """Renew every retry period in a daemon thread; ``on_lost(reason)`` runs once if leadership is lost."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, args=(on_lost,), name="lease-renewer", daemon=True)
        self._thread.start()
        return self._thread

    def _renew_loop(self, on_lost: Callable[[str], None]) -> None:
        last_ok = self.renewed_at if self.renewed_at is not None else self.monotonic()
        while not self._stop.wait(self.retry_seconds):
            remaining = self.renew_seconds - (self.monotonic() - last_ok)
            problem, seen = "", None
            try:
                # A slow API must not carry us past the renew deadline: the attempt gets what is left.
                if remaining > 0:
                    if self.try_acquire_or_renew(timeout=remaining, renew_only=True):
                        last_ok = self.renewed_at or self.monotonic()
                        continue
                    seen = self.last
            except Exception as exc:  # noqa: BLE001 - any failure is a missed renewal; the deadline decides
                problem = str(exc)
                log.warning("renewing lease %s failed: %s", self.where, exc)
            if self._stop.is_set():
                return
            # A conflict is retried (the next read shows who wrote); any other non-ours Lease is a loss now.
            if seen is not None and seen.reason not in (OURS, CONFLICT):
                holder = f"held by {seen.holder}" if seen.holder else ("gone" if seen.reason == ABSENT else "released")
                on_lost(f"lease {self.where} is {holder}")
                return
            if self.monotonic() - last_ok >= self.renew_seconds:
                on_lost(f"could not renew lease {self.where} for {self.renew_seconds:g}s" + (f" ({problem})" if problem else ""))
                return

    def stop_renewing(self) -> None:
        """Stop the renew thread (before a release, so that it cannot take the Lease back)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.request_timeout * 2 + self.retry_seconds)

    def release(self) -> bool:
        """Give the Lease up if we still hold it, so a standby takes over at once; True when released."""
        try:
            lease = self._read(None)
            body = released(lease, self.identity, self.clock())
            if body is None:
                return False
            self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, body, _request_timeout=self._timeout(None))
        except Exception as exc:  # noqa: BLE001 - shutting down: the Lease then simply expires
            log.warning("could not release lease %s: %s", self.where, exc)
            return False
        log.info("released lease %s", self.where)
        return True


def exit_on_lost(reason: str) -> None:
    """Leadership is lost: log it and end the process at once (non-zero), so Kubernetes restarts it as a standby."""
    log.error("lost leadership: %s; exiting so that this replica stops acting and restarts as a standby", reason)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - nothing may stop the exit
            pass
    # os._exit, not sys.exit: this runs in the renew thread and kopf's tasks must stop now, without cleanup
    # that could still act (a clean shutdown would also release a Lease that is no longer ours).
    os._exit(1)
