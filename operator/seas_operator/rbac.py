"""Every Kubernetes API call the operator makes, for least-privilege RBAC.

``API_CALLS`` lists each call as ``(apiGroup, resource, verb, scope)``: the API
group (``""`` for the core group), the resource (``"<resource>/<subresource>"``
for subresources), the verb, and ``"namespaced"`` or ``"cluster"``.

The Helm chart's Role/ClusterRole rules (``charts/seas-operator``) are written
to grant exactly these calls; ``tests/test_chart.py`` renders the chart in
namespaced and cluster-wide mode and checks that the rules cover every entry
here, grant nothing else, and use no wildcards. The operator must only make
these calls: a new call needs an entry here and a rule in the chart, or it
will be denied in a real cluster.
"""

from __future__ import annotations

NAMESPACED = "namespaced"
CLUSTER = "cluster"

API_CALLS: tuple[tuple[str, str, str, str], ...] = (
    # The custom resource: kopf watches it, patches finalizers/annotations, and status.
    ("seas.dev", "safetyevolutions", "get", NAMESPACED),
    ("seas.dev", "safetyevolutions", "list", NAMESPACED),
    ("seas.dev", "safetyevolutions", "watch", NAMESPACED),
    ("seas.dev", "safetyevolutions", "patch", NAMESPACED),
    ("seas.dev", "safetyevolutions/status", "get", NAMESPACED),
    ("seas.dev", "safetyevolutions/status", "patch", NAMESPACED),
    # Children set blockOwnerDeletion; OwnerReferencesPermissionEnforcement (e.g. OpenShift) requires this.
    ("seas.dev", "safetyevolutions/finalizers", "update", NAMESPACED),
    # Stage children: attack/evaluate Jobs and DPO training (PyTorchJob, TrainJob or Job).
    ("batch", "jobs", "get", NAMESPACED),
    ("batch", "jobs", "list", NAMESPACED),
    ("batch", "jobs", "watch", NAMESPACED),
    ("batch", "jobs", "create", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "get", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "list", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "watch", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "create", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "get", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "list", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "watch", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "create", NAMESPACED),
    # Stage pods: the container's termination message carries the stage result.
    ("", "pods", "get", NAMESPACED),
    ("", "pods", "list", NAMESPACED),
    # Events on the SafetyEvolution (kopf posts core/v1 events).
    ("", "events", "create", NAMESPACED),
    ("events.k8s.io", "events", "create", NAMESPACED),
    # kopf checks which CRDs exist (peering, the watched resource).
    ("apiextensions.k8s.io", "customresourcedefinitions", "get", CLUSTER),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list", CLUSTER),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch", CLUSTER),
    # Cluster-wide mode only: kopf follows namespaces when it watches all of them.
    ("", "namespaces", "get", CLUSTER),
    ("", "namespaces", "list", CLUSTER),
    ("", "namespaces", "watch", CLUSTER),
)

# Calls made only in cluster-wide mode (--all-namespaces); namespaced mode neither makes nor is granted them.
CLUSTER_WIDE_ONLY: frozenset[tuple[str, str]] = frozenset({("", "namespaces")})
