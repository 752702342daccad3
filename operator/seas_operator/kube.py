"""The operator's only Kubernetes API calls (besides kopf's own watching, patching and events).

Every call here is listed in ``rbac.API_CALLS``; the chart's RBAC test checks
the rendered roles against that list. Objects travel as plain dicts: the
generic custom-objects endpoints serve batch/v1 Jobs and the Kubeflow kinds
alike, and nothing is lost to client-side model conversion. Which kinds exist,
and how their pods report, comes from the table in ``kinds``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import kubernetes
from kubernetes.client.exceptions import ApiException

from .api import GROUP, PLURAL, VERSION
from .builders import StageObject
from .children import pod_failure_reason, result_pod, termination_message
from .kinds import CHILD_KINDS, ChildKind, child_selector, evolution_selector


def load_client_config() -> Any:
    """An ApiClient from the in-cluster service account, else from kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


class Kube:
    """Thin wrapper over the calls the reconcile shell makes; ``on_call`` counts each one."""

    def __init__(self, api_client: Any, on_call: Callable[[], None] = lambda: None) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.on_call = on_call
        self.missing_kinds: set[str] = set()

    def get_evolution(self, namespace: str, name: str) -> Optional[dict[str, Any]]:
        """The SafetyEvolution as stored now; None when it is gone."""
        try:
            self.on_call()
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        self.on_call()
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": patch})

    def list_children(self, namespace: str, evolution: str) -> dict[str, dict[str, Any]]:
        """Every child of the evolution, by name, across the kinds it may create."""
        found: dict[str, dict[str, Any]] = {}
        for kind, info in CHILD_KINDS.items():
            if kind in self.missing_kinds:
                continue
            try:
                self.on_call()
                listing = self.custom.list_namespaced_custom_object(info.group, info.version, namespace, info.plural, label_selector=evolution_selector(evolution))
            except ApiException as exc:
                if exc.status == 404:  # Kubeflow not installed: nothing of that kind can exist
                    self.missing_kinds.add(kind)
                    continue
                raise
            for item in listing.get("items", []):
                item.setdefault("kind", kind)
                found[item["metadata"]["name"]] = item
        return found

    def create(self, obj: StageObject, namespace: str) -> bool:
        """Create a child; False when it already exists (it is then adopted)."""
        kind = obj.child_kind
        try:
            self.on_call()
            self.custom.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, obj.body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise RuntimeError(f"{kind.kind} is not served by this cluster (is Kubeflow installed?); set spec.training.backend to job") from None
            raise
        return True

    def pods(self, namespace: str, child: str) -> list[dict[str, Any]]:
        """The pods of a child (the builders label them with the child's name), as plain dicts."""
        self.on_call()
        response = self.core.list_namespaced_pod(namespace, label_selector=child_selector(child), _preload_content=False)
        return json.loads(response.data).get("items", [])

    def result_message(self, namespace: str, child: str, kind: ChildKind) -> tuple[Optional[str], str]:
        """(the leader pod's termination message, why its pod failed)."""
        pod = result_pod(self.pods(namespace, child), kind.is_leader)
        if pod is None:
            return None, ""
        return termination_message(pod, kind.container), pod_failure_reason(pod, kind.container)
