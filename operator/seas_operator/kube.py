"""The operator's only Kubernetes API calls (besides kopf's own watching, patching and events).

Every call here is listed in ``rbac.API_CALLS``; the chart's RBAC test checks
the rendered roles against that list. Objects travel as plain dicts: the
generic custom-objects endpoints serve batch/v1 Jobs and the Kubeflow kinds
alike, and nothing is lost to client-side model conversion.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from .builders import CHILD_KINDS, StageObject, pod_selector
from .children import pod_failure_reason, result_pod, termination_message
from .metrics import API_CALLS


def load_client_config() -> Any:
    """An ApiClient from the in-cluster service account, else from kubeconfig."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


class Kube:
    """Thin wrapper over the calls the reconcile shell makes."""

    def __init__(self, api_client: Any) -> None:
        import kubernetes

        self._k8s = kubernetes
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.missing_kinds: set[str] = set()

    def count_call(self) -> None:
        API_CALLS.inc()  # thread-safe; reconciles run concurrently in kopf's thread pool

    def list_children(self, namespace: str, evolution: str) -> dict[str, dict[str, Any]]:
        """Every child of the evolution, by name, across the kinds it may create."""
        found: dict[str, dict[str, Any]] = {}
        for kind, info in CHILD_KINDS.items():
            if kind in self.missing_kinds:
                continue
            try:
                self.count_call()
                listing = self.custom.list_namespaced_custom_object(info.group, info.version, namespace, info.plural, label_selector=f"seas.dev/evolution={evolution}")
            except self._k8s.client.exceptions.ApiException as exc:
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
        try:
            self.count_call()
            self.custom.create_namespaced_custom_object(obj.group, obj.api_version.split("/")[-1], namespace, obj.plural, obj.body)
        except self._k8s.client.exceptions.ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise RuntimeError(f"{obj.kind} is not served by this cluster (is Kubeflow installed?); set spec.training.backend to job") from None
            raise
        return True

    def pods(self, namespace: str, child: str) -> list[dict[str, Any]]:
        """The pods of a child (the builders label them with the child's name), as plain dicts."""
        self.count_call()
        response = self.core.list_namespaced_pod(namespace, label_selector=pod_selector(child), _preload_content=False)
        return json.loads(response.data).get("items", [])

    def result_message(self, namespace: str, child: str) -> tuple[Optional[str], str]:
        """(the result pod's termination message, why its pod failed)."""
        pod = result_pod(self.pods(namespace, child))
        if pod is None:
            return None, ""
        return termination_message(pod), pod_failure_reason(pod)
