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
    # The custom resource: kopf lists and watches it (and patches only to drop a finalizer an older operator left);
    # the reconcile reads it fresh and patches its status.
    ("seas.dev", "safetyevolutions", "get", NAMESPACED),
    ("seas.dev", "safetyevolutions", "list", NAMESPACED),
    ("seas.dev", "safetyevolutions", "watch", NAMESPACED),
    ("seas.dev", "safetyevolutions", "patch", NAMESPACED),
    ("seas.dev", "safetyevolutions/status", "patch", NAMESPACED),
    # Children set blockOwnerDeletion; OwnerReferencesPermissionEnforcement (e.g. OpenShift) requires this.
    ("seas.dev", "safetyevolutions/finalizers", "update", NAMESPACED),
    # Stage children: attack/evaluate Jobs and DPO training (PyTorchJob, TrainJob or Job). kopf watches them so a
    # finished stage is acted on at once; get checks who owns a name taken at create (and a TrainJob pod's Job);
    # delete ends stuck, overdue, orphaned and expired children.
    ("batch", "jobs", "get", NAMESPACED),
    ("batch", "jobs", "list", NAMESPACED),
    ("batch", "jobs", "watch", NAMESPACED),
    ("batch", "jobs", "create", NAMESPACED),
    ("batch", "jobs", "delete", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "get", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "list", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "watch", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "create", NAMESPACED),
    ("kubeflow.org", "pytorchjobs", "delete", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "get", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "list", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "watch", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "create", NAMESPACED),
    ("trainer.kubeflow.org", "trainjobs", "delete", NAMESPACED),
    # A TrainJob's pods belong to its JobSet's Jobs: the ownership chain is checked link by link.
    ("jobset.x-k8s.io", "jobsets", "get", NAMESPACED),
    # Stage pods: why one cannot start, and the container's termination message that carries the result.
    ("", "pods", "list", NAMESPACED),
    # Events on the SafetyEvolution (the reconcile and kopf post core/v1 events).
    ("", "events", "create", NAMESPACED),
    # kopf checks which CRDs exist (the watched resources; Kubeflow's kinds may appear later).
    ("apiextensions.k8s.io", "customresourcedefinitions", "get", CLUSTER),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list", CLUSTER),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch", CLUSTER),
    # Namespaced mode only: kopf lists and watches namespaces to learn which of the named ones exist (watching
    # every namespace, it needs none).
    ("", "namespaces", "list", CLUSTER),
    ("", "namespaces", "watch", CLUSTER),
    # --- Leader election (seas_operator.leader): one coordination.k8s.io/v1 Lease in the operator's
    # OWN namespace (POD_NAMESPACE), never in the watched ones; see OWN_NAMESPACE_ONLY below. The chart
    # grants these by a Role in the release namespace, in namespaced and cluster-wide mode alike.
    ("coordination.k8s.io", "leases", "get", NAMESPACED),
    ("coordination.k8s.io", "leases", "create", NAMESPACED),
    ("coordination.k8s.io", "leases", "update", NAMESPACED),
)

# Calls made only in namespaced mode (--namespace); cluster-wide mode neither makes nor is granted them.
NAMESPACED_MODE_ONLY: frozenset[tuple[str, str]] = frozenset({("", "namespaces")})

# Calls made only in the operator's own (release) namespace: the leader-election Lease.
OWN_NAMESPACE_ONLY: frozenset[tuple[str, str]] = frozenset({("coordination.k8s.io", "leases")})
