"""kopf handlers: a thin shell that reads the cluster, calls :func:`reconcile.decide`, and writes back.

Create, update, resume and a timer all run the same level-triggered reconcile,
serialized per object. Run with ``seas operator`` (or ``kopf run -m seas_operator.handlers``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Optional

import kopf

from .api import GROUP, PLURAL, VERSION
from .children import child_state
from .conditions import format_time
from .kube import Kube, load_client_config
from .metrics import COLLECTOR, RECONCILES, serve
from .patching import merge_patch
from .reconcile import Defaults, Observed, decide, invalid_spec_status

log = logging.getLogger("seas_operator")

INTERVAL = float(os.environ.get("SEAS_RECONCILE_INTERVAL", "15"))
DEFAULTS = Defaults(
    image=os.environ.get("SEAS_RUNTIME_IMAGE", Defaults.image),
    pvc=os.environ.get("SEAS_DEFAULT_PVC", Defaults.pvc),
    backend=os.environ.get("SEAS_DEFAULT_TRAINING_BACKEND", Defaults.backend),
    retry_base_seconds=float(os.environ.get("SEAS_RETRY_BASE_SECONDS", Defaults.retry_base_seconds)),
)
_LOCKS: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_STATE: dict[str, Any] = {}


def kube() -> Kube:
    if "kube" not in _STATE:
        _STATE["kube"] = Kube(load_client_config())
    return _STATE["kube"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our own Events say what happened; kopf's per-handler success events would be noise.
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="seas.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="seas.dev")
    settings.watching.server_timeout = 300
    port = int(os.environ.get("SEAS_METRICS_PORT", "8080"))
    if port and not _STATE.get("metrics"):
        serve(port)
        _STATE["metrics"] = port
    kube()


def _observe(namespace: str, name: str, status: dict[str, Any]) -> Observed:
    children = kube().list_children(namespace, name)
    observed = Observed(children=children)
    for entry in (status.get("stages") or {}).values():
        child = children.get(entry.get("child", ""))
        if entry.get("state") == "running" and child is not None and child_state(entry["kind"], child).phase != "running":
            message, reason = kube().result_message(namespace, entry["child"])
            observed.messages[entry["child"]] = message
            if reason:
                observed.pod_reasons[entry["child"]] = reason
    return observed


def reconcile(namespace: str, name: str, logger: Any = log) -> Optional[dict[str, Any]]:
    """Read the object fresh, decide, create children, post events, patch status."""
    k = kube()
    with _LOCKS[(namespace, name)]:
        try:
            return _reconcile_locked(k, namespace, name, logger)
        finally:
            RECONCILES.inc()


def _reconcile_locked(k: Kube, namespace: str, name: str, logger: Any) -> Optional[dict[str, Any]]:
    """One reconcile under the object's lock: read fresh, decide, create, report."""
    try:
        k.count_call()
        body = k.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except k._k8s.client.exceptions.ApiException as exc:
        if exc.status == 404:
            COLLECTOR.forget(namespace, name)
            return None
        raise
    old_status = dict(body.get("status") or {})
    now = datetime.now(timezone.utc)
    try:
        decision = decide(body, _observe(namespace, name, old_status), now, DEFAULTS)
        for obj in decision.create:
            k.create(obj, namespace)
    except Exception as exc:  # never crash: report on the object and try again next time
        logger.exception("reconcile of %s/%s failed", namespace, name)
        status = invalid_spec_status(old_status, int(body["metadata"].get("generation") or 1), [f"reconcile error: {exc}"], format_time(now))
        status["conditions"] = [dict(c, reason="ReconcileError") if c["type"] in ("Degraded", "Ready") else c for c in status["conditions"]]
        _patch_status(k, namespace, name, old_status, status)
        kopf.event(body, type="Warning", reason="ReconcileError", message=str(exc)[:1024])
        return None
    for type_, reason, message in decision.events:
        kopf.event(body, type=type_, reason=reason, message=message)
        (log.warning if type_ == "Warning" else log.info)("%s/%s %s: %s", namespace, name, reason, message)
    _patch_status(k, namespace, name, old_status, decision.status)
    COLLECTOR.update(namespace, name, decision.status)
    return decision.status


def _patch_status(k: Kube, namespace: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    old = {key: value for key, value in old.items() if key != "kopf"}
    patch = merge_patch(old, new)
    if patch:
        k.count_call()
        k.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": patch})


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_change(namespace: str, name: str, logger: Any, **_: Any) -> None:
    reconcile(namespace, name, logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=INTERVAL, initial_delay=min(INTERVAL, 5.0))
def on_timer(namespace: str, name: str, logger: Any, **_: Any) -> None:
    reconcile(namespace, name, logger)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def on_delete(namespace: str, name: str, **_: Any) -> None:
    # Children go with their owner (ownerReferences); only the metrics need forgetting.
    COLLECTOR.forget(namespace, name)
