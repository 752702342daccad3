"""The operator's only Kubernetes API calls (besides kopf's own watching).

Every call here is listed in ``rbac.API_CALLS``; the chart's RBAC test checks
the rendered roles against that list. Objects travel as plain dicts: the
generic custom-objects endpoints serve batch/v1 Jobs and the Kubeflow kinds
alike, and nothing is lost to client-side model conversion. Which kinds exist,
and how their pods report, comes from the table in ``kinds``.

Every call has a timeout, so a half-open connection cannot hold an object's
lock, and every failure leaves as an :class:`~.troubles.ApiProblem` the shell
can classify. Trust is by ownership, not by label: a child counts only when its
controller is this evolution (by uid), and a pod's result only when the pod's
controller chain leads to that child.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional

import kubernetes

from .api import GROUP, PLURAL, VERSION
from .builders import StageObject
from .children import controller_ref, controller_uid
from .conditions import format_time
from .kinds import CHILD_KINDS, JOB, LABEL_CHILD, TRAINJOB, ChildKind, evolution_selector
from .troubles import ApiProblem, classify

# A TrainJob runs as a JobSet of Jobs: its pods are the JobSet's Jobs' pods.
JOBSET = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
# A kind found missing (Kubeflow not installed) is looked for again after this long: it may be installed later.
KIND_RECHECK_SECONDS = 300.0
COMPONENT = "seas-operator"


def load_client_config() -> Any:
    """An ApiClient from the in-cluster service account, else from kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


class Kube:
    """Thin wrapper over the calls the reconcile shell makes; ``on_call`` counts each one."""

    def __init__(self, api_client: Any, on_call: Callable[[], None] = lambda: None, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.on_call = on_call
        self.timeout = (min(timeout, 10.0), timeout)  # (connect, read) seconds
        self.clock = clock
        self.missing_kinds: dict[str, float] = {}  # kind -> when it was found missing

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.on_call()
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except Exception as exc:  # every transport or API error leaves classified, without HTTP headers
            raise classify(exc, what) from None

    def get_evolution(self, namespace: str, name: str) -> Optional[dict[str, Any]]:
        """The SafetyEvolution as stored now; None when it is gone."""
        try:
            return self._call(f"get SafetyEvolution {namespace}/{name}", self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        except ApiProblem as problem:
            if problem.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        self._call(f"patch status of {namespace}/{name}", self.custom.patch_namespaced_custom_object_status,
                   GROUP, VERSION, namespace, PLURAL, name, {"status": patch})

    def _served(self, kind: str) -> bool:
        found_missing = self.missing_kinds.get(kind)
        if found_missing is not None and self.clock() - found_missing < KIND_RECHECK_SECONDS:
            return False
        return True

    def list_children(self, namespace: str, evolution: str, uid: str) -> dict[str, dict[str, Any]]:
        """Every child this evolution (by uid) controls, by name, across the kinds it may create.

        Objects that merely carry the labels, or that an earlier object of the same name owned, are not ours.
        """
        found: dict[str, dict[str, Any]] = {}
        for kind, info in CHILD_KINDS.items():
            if not self._served(kind):
                continue
            try:
                listing = self._call(f"list {info.plural}", self.custom.list_namespaced_custom_object, info.group, info.version, namespace,
                                     info.plural, label_selector=evolution_selector(evolution))
            except ApiProblem as problem:
                if problem.status == 404:  # Kubeflow not installed (yet): nothing of that kind can exist
                    self.missing_kinds[kind] = self.clock()
                    continue
                raise
            self.missing_kinds.pop(kind, None)
            for item in listing.get("items", []):
                if controller_uid(item) == uid:
                    item.setdefault("kind", kind)
                    found[item["metadata"]["name"]] = item
        return found

    def create(self, obj: StageObject, namespace: str, uid: str) -> bool:
        """Create a child; False when this evolution's child of that name exists already (it is then adopted).

        Raises ApiProblem ``ChildNameTaken`` when an object of that name belongs to someone else (e.g. a Job of
        an earlier object of the same name, until the garbage collector removes it), ``KindNotInstalled`` when
        the cluster does not serve the kind.
        """
        kind = obj.child_kind
        try:
            self._call(f"create {kind.kind} {obj.name}", self.custom.create_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural, obj.body)
        except ApiProblem as problem:
            if problem.status == 404:
                self.missing_kinds[kind.kind] = self.clock()
                raise ApiProblem("KindNotInstalled", f"{kind.kind} is not served by this cluster (is Kubeflow installed?); "
                                                     "install it or set spec.training.backend to job", transient=False) from None
            if problem.status != 409:
                raise
            existing = self._call(f"get {kind.kind} {obj.name}", self.custom.get_namespaced_custom_object, kind.group, kind.version, namespace,
                                  kind.plural, obj.name)
            if controller_uid(existing) != uid:
                raise ApiProblem("ChildNameTaken", f"{kind.kind} {obj.name} exists but is not controlled by this SafetyEvolution "
                                                   f"(uid {uid}); it is left alone and created once that object is gone", transient=False) from None
            return False
        self.missing_kinds.pop(kind.kind, None)
        return True

    def delete(self, kind: ChildKind, name: str, namespace: str) -> None:
        """Delete a child and, in the background, its pods (gone already is fine)."""
        try:
            self._call(f"delete {kind.kind} {name}", self.custom.delete_namespaced_custom_object, kind.group, kind.version, namespace,
                       kind.plural, name, body={"propagationPolicy": "Background"})
        except ApiProblem as problem:
            if problem.status != 404:
                raise

    def pods(self, namespace: str, evolution: str) -> list[dict[str, Any]]:
        """The pods of every child of the evolution (the builders label them), as plain dicts."""
        response = self._call(f"list pods of {evolution}", self.core.list_namespaced_pod, namespace,
                              label_selector=evolution_selector(evolution), _preload_content=False)
        return json.loads(response.data).get("items", [])

    def owned_pods(self, pods: list[dict[str, Any]], child: Mapping[str, Any], kind: ChildKind, namespace: str) -> list[dict[str, Any]]:
        """The pods among ``pods`` that ``child`` created: controlled by it, or for a TrainJob by its JobSet's Jobs."""
        name, uid = child["metadata"]["name"], child["metadata"].get("uid", "")
        labelled = [p for p in pods if (p.get("metadata") or {}).get("labels", {}).get(LABEL_CHILD) == name]
        if kind is not TRAINJOB:
            return [p for p in labelled if controller_uid(p) == uid]
        return [p for p in labelled if self._trainjob_pod(p, uid, namespace)]

    def _trainjob_pod(self, pod: Mapping[str, Any], trainjob_uid: str, namespace: str) -> bool:
        """Pod -> Job -> JobSet -> TrainJob, each link a controller ownerReference checked by uid."""
        job_ref = controller_ref(pod)
        if job_ref.get("kind") != JOB.kind:
            return False
        try:
            job = self._call(f"get Job {job_ref.get('name')}", self.custom.get_namespaced_custom_object, JOB.group, JOB.version, namespace,
                             JOB.plural, str(job_ref.get("name")))
            jobset_ref = controller_ref(job)
            if job["metadata"].get("uid") != job_ref.get("uid") or jobset_ref.get("kind") != "JobSet":
                return False
            jobset = self._call(f"get JobSet {jobset_ref.get('name')}", self.custom.get_namespaced_custom_object, *JOBSET[:2], namespace,
                                JOBSET[2], str(jobset_ref.get("name")))
        except ApiProblem as problem:
            if problem.status == 404:
                return False
            raise
        return jobset["metadata"].get("uid") == jobset_ref.get("uid") and controller_uid(jobset) == trainjob_uid

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the SafetyEvolution."""
        meta = body.get("metadata") or {}
        now = datetime.now(timezone.utc)
        event = {
            "metadata": {"generateName": f"{meta.get('name', 'seas')}.", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": body.get("apiVersion") or f"{GROUP}/{VERSION}", "kind": body.get("kind") or "SafetyEvolution",
                               "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "type": type_, "reason": reason, "message": message[:1024],
            "firstTimestamp": format_time(now), "lastTimestamp": format_time(now), "count": 1,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        }
        self._call(f"post Event {reason}", self.core.create_namespaced_event, meta.get("namespace"), event)


__all__ = ["JOBSET", "KIND_RECHECK_SECONDS", "Kube", "load_client_config"]
