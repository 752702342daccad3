"""The operator's only Kubernetes API calls (besides kopf's own watching, patching and events).

Every call here is listed in ``rbac.API_CALLS``; the chart's RBAC test checks
the rendered roles against that list. Objects travel as plain dicts: the
generic custom-objects endpoints serve batch/v1 Jobs and the Kubeflow kinds
alike, and nothing is lost to client-side model conversion.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from .builders import StageObject
from .children import pod_failure_reason, termination_message

log = logging.getLogger(__name__)

CHILD_KINDS = {
    "Job": ("batch", "v1", "jobs"),
    "PyTorchJob": ("kubeflow.org", "v1", "pytorchjobs"),
    "TrainJob": ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
}
# How each kind labels the pod whose termination message carries the stage result.
POD_SELECTORS = {
    "Job": "job-name={name}",
    "PyTorchJob": "training.kubeflow.org/job-name={name},training.kubeflow.org/replica-type=master",
    "TrainJob": "jobset.sigs.k8s.io/jobset-name={name}",
}


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
        self.api = api_client
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.missing_kinds: set[str] = set()
        self.calls = 0

    def list_children(self, namespace: str, evolution: str) -> dict[str, dict[str, Any]]:
        """Every child of the evolution, by name, across the kinds it may create."""
        found: dict[str, dict[str, Any]] = {}
        for kind, (group, version, plural) in CHILD_KINDS.items():
            if kind in self.missing_kinds:
                continue
            try:
                self.calls += 1
                listing = self.custom.list_namespaced_custom_object(group, version, namespace, plural, label_selector=f"seas.dev/evolution={evolution}")
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
            self.calls += 1
            self.custom.create_namespaced_custom_object(obj.group or "batch", obj.api_version.split("/")[-1], namespace, obj.plural, obj.body)
        except self._k8s.client.exceptions.ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise RuntimeError(f"{obj.kind} is not served by this cluster (is Kubeflow installed?); set spec.training.backend to job") from None
            raise
        return True

    def pods(self, namespace: str, kind: str, child: str) -> list[dict[str, Any]]:
        """The pods of a child, as plain dicts."""
        self.calls += 1
        response = self.core.list_namespaced_pod(namespace, label_selector=POD_SELECTORS[kind].format(name=child), _preload_content=False)
        return json.loads(response.data).get("items", [])

    def result_message(self, namespace: str, kind: str, child: str) -> tuple[Optional[str], str]:
        """(termination message of the newest pod with one, failure reason of the last failed pod)."""
        message, reason = None, ""
        pods = sorted(self.pods(namespace, kind, child), key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
        for pod in pods:
            text = termination_message(pod)
            if text:
                message = text
            why = pod_failure_reason(pod)
            if why:
                reason = why
        return message, reason
