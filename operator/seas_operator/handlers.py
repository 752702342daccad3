"""kopf handlers: a thin shell that reads the cluster, calls :func:`reconcile.decide`, and writes back.

Create, update, resume and a timer all run the same level-triggered reconcile,
serialized per object. :func:`build_registry` registers them for one operator's
settings; ``seas operator`` runs them. Everything the handlers share (settings,
API client, metrics, per-object locks) lives in an :class:`OperatorState` kept
in kopf's ``memo``, made when the operator starts: nothing is read or built at
import time.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import kopf

from .api import GROUP, PLURAL, VERSION
from .children import ChildPhase
from .conditions import format_time
from .kinds import kind_named
from .kube import Kube, load_client_config
from .metrics import OperatorMetrics
from .patching import merge_patch
from .reconcile import Observed, decide, invalid_spec_status
from .settings import OperatorSettings
from .status import EvolutionStatus, StageState, dump_status, parse_status

log = logging.getLogger("seas_operator")


@dataclass
class OperatorState:
    """What one running operator holds: its settings, API client, metrics and a lock per object."""

    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    kube: Optional[Kube] = None
    locks: defaultdict[tuple[str, str], threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))


def observe(kube: Kube, namespace: str, name: str, status: EvolutionStatus) -> Observed:
    """The children of the evolution, and the result or failure of each running one that finished."""
    children = kube.list_children(namespace, name)
    observed = Observed(children=children)
    for entry in status.stages.values():
        child = children.get(entry.child)
        if entry.state != StageState.RUNNING or child is None:
            continue
        kind = kind_named(entry.kind)
        if kind.read_state(child).phase != ChildPhase.RUNNING:
            message, reason = kube.result_message(namespace, entry.child, kind)
            observed.messages[entry.child] = message
            if reason:
                observed.pod_reasons[entry.child] = reason
    return observed


def reconcile(state: OperatorState, namespace: str, name: str, logger: Any = log) -> Optional[EvolutionStatus]:
    """Read the object fresh, decide, create children, post events, patch status."""
    with state.locks[(namespace, name)]:
        try:
            return _reconcile_locked(state, namespace, name, logger)
        finally:
            state.metrics.reconciles.inc()


def _reconcile_locked(state: OperatorState, namespace: str, name: str, logger: Any) -> Optional[EvolutionStatus]:
    """One reconcile under the object's lock: read fresh, decide, create, report."""
    kube = state.kube
    assert kube is not None, "the startup handler connects to the API first"
    body = kube.get_evolution(namespace, name)
    if body is None:
        state.metrics.statuses.forget(namespace, name)
        return None
    old = dict(body.get("status") or {})
    now = datetime.now(timezone.utc)
    try:
        decision = decide(body, observe(kube, namespace, name, parse_status(old)), now, state.settings)
        for obj in decision.create:
            kube.create(obj, namespace)
    except Exception as exc:  # never crash: report on the object and try again next time
        logger.exception("reconcile of %s/%s failed", namespace, name)
        status = invalid_spec_status(parse_status(old), int(body["metadata"].get("generation") or 1), [f"reconcile error: {exc}"],
                                     format_time(now), reason="ReconcileError")
        _patch_status(kube, namespace, name, old, status)
        kopf.event(body, type="Warning", reason="ReconcileError", message=str(exc)[:1024])
        return None
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        (log.warning if event.type == "Warning" else log.info)("%s/%s %s: %s", namespace, name, event.reason, event.message)
    _patch_status(kube, namespace, name, old, decision.status)
    state.metrics.statuses.update(namespace, name, decision.status)
    return decision.status


def _patch_status(kube: Kube, namespace: str, name: str, old: dict[str, Any], new: EvolutionStatus) -> None:
    patch = merge_patch({k: v for k, v in old.items() if k != "kopf"}, dump_status(new))
    if patch:
        kube.patch_status(namespace, name, patch)


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
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="seas.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="seas.dev")
        settings.watching.server_timeout = 300
        if state.settings.metrics_port:
            state.metrics.serve(state.settings.metrics_port)
        state.kube = Kube(load_client_config(), on_call=state.metrics.api_calls.inc)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    def on_change(namespace: str, name: str, logger: Any, memo: kopf.Memo, **_: Any) -> None:
        reconcile(memo.state, namespace, name, logger)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=settings.interval, initial_delay=min(settings.interval, 5.0), registry=registry)
    def on_timer(namespace: str, name: str, logger: Any, memo: kopf.Memo, **_: Any) -> None:
        reconcile(memo.state, namespace, name, logger)

    @kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
    def on_delete(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
        # Children go with their owner (ownerReferences); only the metrics need forgetting.
        memo.state.metrics.statuses.forget(namespace, name)

    return registry
