"""kopf handlers: a thin shell that reads the cluster, calls :func:`reconcile.decide`, and writes back.

No handler here needs a finalizer, so deleting a SafetyEvolution, its namespace
or the CRD completes whether or not the operator runs (kopf adds one for every
timer, daemon or mandatory deletion handler; there are none). Instead:

- a watch of SafetyEvolutions reconciles an object when it first appears and
  whenever its spec changes (its ``generation``), and forgets it when it goes;
- watches of the child kinds reconcile the owner as soon as a child finishes,
  so a finished stage is acted on within a second or two;
- one periodic loop reconciles every known object each ``interval`` seconds
  (retry timers, schedules, stuck pods, deadlines), backing off an object while
  the API fails for it.

Reconciles of one object are serialized by a lock. Everything the handlers
share lives in an :class:`OperatorState` kept in kopf's ``memo``, made when the
operator starts: nothing is read or built at import time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import kopf

from .api import GROUP, PLURAL, VERSION
from .children import ChildPhase, disrupted, exit_code, pod_failure_reason, result_pod, stuck_reason, termination_message
from .conditions import format_time
from .kinds import CHILD_KINDS, LABEL_EVOLUTION, ChildKind, kind_named
from .kube import Kube, load_client_config
from .metrics import UNEXPECTED, OperatorMetrics
from .patching import merge_patch
from .reconcile import Observed, decide, degraded_status
from .settings import OperatorSettings
from .status import EvolutionStatus, StageState, dump_status, parse_status
from .troubles import ApiProblem, Trouble, respond

log = logging.getLogger("seas_operator")

Key = tuple[str, str]  # (namespace, name)


@dataclass
class OperatorState:
    """What one running operator holds: its settings, API client, metrics, the objects it knows and a lock per object."""

    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    kube: Optional[Kube] = None
    locks: defaultdict[Key, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    generations: dict[Key, Any] = field(default_factory=dict)  # every evolution the watch shows -> generation last acted on
    troubles: dict[Key, Trouble] = field(default_factory=dict)  # objects whose reconciles keep failing
    not_before: dict[Key, float] = field(default_factory=dict)  # backoff: the loop skips an object until then
    finished_children: defaultdict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))  # child uids already acted on
    last_pass: float = field(default_factory=time.monotonic)  # when the periodic loop last went round
    stop: threading.Event = field(default_factory=threading.Event)

    def forget(self, key: Key) -> None:
        """The object is gone: drop everything kept for it."""
        for table in (self.generations, self.troubles, self.not_before, self.finished_children):
            table.pop(key, None)
        self.metrics.statuses.forget(*key)


def observe(kube: Kube, namespace: str, name: str, uid: str, status: EvolutionStatus) -> Observed:
    """The children this evolution controls; for each running stage, its result or failure, or why its pod cannot start."""
    children = kube.list_children(namespace, name, uid)
    observed = Observed(children=children)
    running = [e for e in status.stages.values() if e.state == StageState.RUNNING and e.child in children]
    if not running:
        return observed
    pods = kube.pods(namespace, name)
    for entry in running:
        kind = kind_named(entry.kind)
        child = children[entry.child]
        owned = kube.owned_pods(pods, child, kind, namespace)
        if kind.read_state(child).phase == ChildPhase.RUNNING:
            stuck = next((r for r in (stuck_reason(p, kind.container) for p in owned) if r), "")
            if stuck:
                observed.stuck[entry.child] = stuck
            continue
        if any(disrupted(p) for p in owned):
            observed.disrupted.add(entry.child)
        pod = result_pod(owned, kind.is_leader)
        if pod is None:
            continue
        observed.messages[entry.child] = termination_message(pod, kind.container)
        reason, code = pod_failure_reason(pod, kind.container), exit_code(pod, kind.container)
        if reason:
            observed.pod_reasons[entry.child] = reason
        if code is not None:
            observed.exit_codes[entry.child] = code
    return observed


def reconcile(state: OperatorState, namespace: str, name: str, logger: Any = log) -> Optional[EvolutionStatus]:
    """Read the object fresh, decide, create and end children, patch status, post events; never raises for API trouble."""
    key = (namespace, name)
    with state.locks[key]:
        body: Optional[dict[str, Any]] = None
        started = time.monotonic()
        try:
            body = _get(state, key)
            if body is None:
                return None
            status = _reconcile_locked(state, body, logger)
        except ApiProblem as problem:
            _troubled(state, key, body, problem, logger)
            return None
        except Exception:
            state.metrics.reconcile_errors.labels(reason=UNEXPECTED).inc()  # a bug: the caller logs it
            raise
        finally:
            state.metrics.reconciles.inc()
            state.metrics.reconcile_duration.observe(time.monotonic() - started)
        state.troubles.pop(key, None)
        state.not_before.pop(key, None)
        return status


def _get(state: OperatorState, key: Key) -> Optional[dict[str, Any]]:
    assert state.kube is not None, "the startup handler connects to the API first"
    body = state.kube.get_evolution(*key)
    if body is None:
        state.forget(key)
    return body


def _reconcile_locked(state: OperatorState, body: dict[str, Any], logger: Any) -> EvolutionStatus:
    kube = state.kube
    assert kube is not None
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old = dict(body.get("status") or {})
    decision = decide(body, observe(kube, namespace, name, meta.get("uid", ""), parse_status(old)), datetime.now(timezone.utc), state.settings)
    # Create before recording: a child created whose status patch then fails is adopted next time (same name).
    for obj in decision.create:
        kube.create(obj, namespace, meta.get("uid", ""))
    _patch_status(kube, namespace, name, old, decision.status)
    # End children only once the status no longer waits on them: a lost delete is repeated, a lost verdict is not.
    for kind, child in decision.delete:
        kube.delete(kind_named(kind), child, namespace)
    for event in decision.events:
        (logger.warning if event.type == "Warning" else logger.info)("%s/%s %s: %s", namespace, name, event.reason, event.message)
        _post(kube, body, event.type, event.reason, event.message)
    state.metrics.statuses.update(namespace, name, decision.status)
    return decision.status


def _post(kube: Kube, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; losing one to a failing API must not undo the reconcile that caused it."""
    try:
        kube.post_event(body, type_, reason, message)
    except ApiProblem as problem:
        log.warning("could not post %s Event %s: %s", type_, reason, problem)


def _troubled(state: OperatorState, key: Key, body: Optional[dict[str, Any]], problem: ApiProblem, logger: Any) -> None:
    """Back off, and say so on the object when the trouble is permanent or lasts (see ``troubles``)."""
    now = time.monotonic()
    response = respond(state.troubles.get(key), problem, now, state.settings.interval, state.settings.api_unavailable_seconds)
    state.troubles[key] = response.trouble
    state.not_before[key] = now + response.retry_in
    state.metrics.reconcile_errors.labels(reason=problem.reason).inc()
    logger.warning("%s/%s: %s (attempt %d; next in %.0fs)", *key, problem, response.trouble.failures, response.retry_in)
    if body is None or state.kube is None:
        return
    lasting = f" (failing for {now - response.trouble.since:.0f}s)" if problem.transient else ""
    message = f"{problem.message}{lasting}"
    if response.post_event:
        _post(state.kube, body, "Warning", problem.reason, message)
    if response.degrade:
        old = dict(body.get("status") or {})
        status = degraded_status(parse_status(old), int(body["metadata"].get("generation") or 1), problem.reason, message,
                                 format_time(datetime.now(timezone.utc)))
        try:
            _patch_status(state.kube, *key, old, status)
        except ApiProblem:
            pass  # the API that failed the reconcile fails this too; the log and metric have it


def _patch_status(kube: Kube, namespace: str, name: str, old: dict[str, Any], new: EvolutionStatus) -> None:
    patch = merge_patch({k: v for k, v in old.items() if k != "kopf"}, dump_status(new))
    if patch:
        kube.patch_status(namespace, name, patch)


def reconcile_due(state: OperatorState) -> None:
    """One pass of the periodic loop: every known object not backing off."""
    now = time.monotonic()
    for key in list(state.generations):
        if state.not_before.get(key, 0.0) <= now and not state.stop.is_set():
            reconcile(state, *key)
    state.last_pass = time.monotonic()


def run_loop(state: OperatorState) -> None:
    """Reconcile every known object each ``interval`` seconds until stopped."""
    while not state.stop.wait(state.settings.interval):
        try:
            reconcile_due(state)
        except Exception:  # a bug in one pass must not end the loop (liveness would then restart the pod)
            log.exception("periodic reconcile pass failed")


def _child_handler(kind: ChildKind):
    def on_child(event: dict[str, Any], body: Any, namespace: str, memo: kopf.Memo, logger: Any, **_: Any) -> None:
        state: OperatorState = memo.state
        owner = (namespace, str(body.get("metadata", {}).get("labels", {}).get(LABEL_EVOLUTION, "")))
        uid = str(body.get("metadata", {}).get("uid", ""))
        if event.get("type") == "DELETED" or not kind.read_state(body).finished or uid in state.finished_children[owner]:
            return
        state.finished_children[owner].add(uid)
        # The initial listing shows children that finished while no operator ran: the periodic loop handles them.
        if event.get("type") is not None and owner in state.generations:
            reconcile(state, *owner, logger)

    on_child.__name__ = f"on_{kind.kind.lower()}"
    return on_child


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """The handlers of one operator, with the re-check interval its settings give."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Optional[kopf.ConnectionInfo]:
        # A registry of our own does not carry kopf's default login handlers: use the same credentials
        # as the kubernetes client (in-cluster service account, else kubeconfig).
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        state: OperatorState = memo.state
        # Our own Events say what happened; kopf's per-handler success events would be noise.
        settings.posting.level = logging.WARNING
        # No call may block forever: a half-open connection would stop the watch (and the operator) silently.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = state.settings.api_timeout_seconds
        settings.networking.connect_timeout = 10
        if state.settings.metrics_port:
            state.metrics.serve(state.settings.metrics_port)
        state.kube = Kube(load_client_config(), on_call=state.metrics.api_calls.inc, timeout=state.settings.api_timeout_seconds)
        threading.Thread(target=run_loop, args=(state,), name="seas-reconcile-loop", daemon=True).start()

    @kopf.on.cleanup(registry=registry)
    def stop(memo: kopf.Memo, **_: Any) -> None:
        memo.state.stop.set()

    @kopf.on.probe(id="reconcileLoopAge", registry=registry)
    def loop_alive(memo: kopf.Memo, **_: Any) -> float:
        # A loop stuck past every API timeout is a bug: fail liveness so the pod restarts.
        state: OperatorState = memo.state
        age = time.monotonic() - state.last_pass
        limit = max(10 * state.settings.interval, 4 * state.settings.api_timeout_seconds, 120.0)
        if age > limit:
            raise kopf.PermanentError(f"the reconcile loop last went round {age:.0f}s ago (limit {limit:.0f}s)")
        return round(age, 1)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def on_evolution(event: dict[str, Any], body: Any, namespace: str, name: str, memo: kopf.Memo, logger: Any, **_: Any) -> None:
        state: OperatorState = memo.state
        key = (namespace, name)
        if event.get("type") == "DELETED":
            state.forget(key)  # children go with their owner (ownerReferences)
            return
        generation = body.get("metadata", {}).get("generation")
        if key in state.generations and state.generations[key] == generation:
            return  # our own status patches, or labels: nothing the reconcile acts on changed
        state.generations[key] = generation
        reconcile(state, namespace, name, logger)

    for kind in CHILD_KINDS.values():
        kopf.on.event(kind.group, kind.version, kind.plural, labels={LABEL_EVOLUTION: kopf.PRESENT}, id=f"child-{kind.kind}",
                      registry=registry)(_child_handler(kind))

    return registry
