"""Stage children built from a SafetyEvolution: Jobs, PyTorchJobs and TrainJobs, validated against published schemas."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from seas_operator.api import SafetyEvolution, SafetyEvolutionSpec
from seas_operator.builders import (
    CONFIG_ENV,
    TERMINATION_LOG,
    Owner,
    StageObject,
    build_stage_object,
    escape_env_value,
    stage_command,
    training_backend,
)
from seas_operator.kinds import (
    LABEL_CHILD,
    LABEL_CYCLE,
    LABEL_EVOLUTION,
    LABEL_ROUND,
    LABEL_STAGE,
    child_kind,
    child_selector,
    kind_named,
)
from seas_operator.names import child_name
from seas_operator.pod_template import PodTemplateSpec, merge_pod_templates, stage_pod
from seas_operator.rbac import API_CALLS
from seas_operator.stage_configs import build_stage_config
from seas_runtime.contract import (
    Stage,
    StageConfig,
    StageKey,
    dump_stage_config,
    parse_stage_config,
)
from tests.helpers import ROOT
from tests.helpers.factories import done_through

SCHEMAS = ROOT / "tests" / "helpers" / "kubeflow_schemas"
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
OWNER = Owner(name="llama3-8b", namespace="llm-safety", uid="6f1c2d0e-1111-2222-3333-444455556666")
IMAGE = "ghcr.io/seas-dev/seas-runtime:0.1.0"
PVC = "seas-artifacts"
UNTRUSTED = "evil/model; rm -rf / $(HF_TOKEN) `id` && curl x|sh"
EMBEDDED = "embedded:smollm2-135m-instruct"

def K(round_: int, stage: str) -> StageKey:
    return StageKey(round_, Stage(stage))


STAGES = [
    K(0, "initialize"),
    K(0, "evaluate"),
    K(1, "attack"),
    K(1, "pairs"),
    K(1, "train-target"),
    K(1, "train-redteam"),
    K(1, "evaluate"),
]
BACKENDS = ["pytorchjob", "trainjob", "job"]
GPU_STAGES = {"initialize", "attack", "train-target", "train-redteam", "evaluate"}


def _spec(**overrides: Any) -> SafetyEvolutionSpec:
    base: dict[str, Any] = {"rounds": 2, "target": {"model": EMBEDDED}, "redTeam": {"model": EMBEDDED}, "initialization": {"enabled": True}}
    for path, value in overrides.items():
        node = base
        parts = path.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return SafetyEvolutionSpec.model_validate(base)


def _gpu_cluster_spec() -> SafetyEvolutionSpec:
    docs = yaml.safe_load_all((ROOT / "examples" / "gpu-cluster.yaml").read_text())
    return SafetyEvolution.model_validate(next(d for d in docs if d and d.get("kind") == "SafetyEvolution")).spec


SPECS = {
    "defaults": _spec(),
    "gpu-cluster": _gpu_cluster_spec(),
    "cpu-only": _spec(resources__gpus=0),
    "untrusted": _spec(
        target={"model": UNTRUSTED, "engine": "vllm"},
        redTeam={"model": "$(HOME)/red; reboot"},
        hubTokenSecret={"name": "hf-token", "key": "token"},
        resources__gpus=2,
        resources__nodeSelector={"nvidia.com/gpu.product": "H100"},
        resources__tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, {"key": "team", "value": "ml"}],
        training__workers=2,
        storage__mountPath="/data/seas",
        image="registry.example/seas-runtime:dev",
    ),
    # A Kueue-managed MIG cluster: every spec.pod field a TrainJob can carry too (priorityClassName and envFrom
    # cannot: see test_priority_class_and_env_from). The legacy resources.nodeSelector still applies under spec.pod's.
    "platform": _spec(
        resources__gpus=1,
        resources__gpuResource="nvidia.com/mig-1g.10gb",
        resources__nodeSelector={"pool": "legacy", "zone": "a"},
        resources__tolerations=[{"key": "legacy", "operator": "Exists"}],
        training__workers=1,
        hubTokenSecret={"name": "hf-token"},
        pod={
            "serviceAccountName": "seas-stage",
            "imagePullSecrets": ["ghcr-pull", "mirror-pull"],
            "labels": {"kueue.x-k8s.io/queue-name": "gpu-team-a", "team": "safety"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "note": "$(HF_TOKEN) stays text"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}]}]}}},
            "nodeSelector": {"pool": "gpu", "nvidia.com/mig.config": "all-1g.10gb"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "env": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
                {"name": "HF_ENDPOINT", "value": "https://hf-mirror.internal/$(HOME)"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key", "optional": True}}},
            ],
        },
    ),
}


def _done(spec: SafetyEvolutionSpec) -> dict[StageKey, Any]:
    """Results of every stage of the evolution, as the runtime would report them."""
    return done_through(spec)


def _config(spec: SafetyEvolutionSpec, key: StageKey) -> StageConfig:
    done = {k: v for k, v in _done(spec).items() if k != key}
    root = f"{spec.storage.mountPath}/{OWNER.namespace}/{OWNER.name}/c0"
    return build_stage_config(OWNER.name, spec, key, done, root, cache_dir=f"{spec.storage.mountPath}/.cache")


def _build(spec: SafetyEvolutionSpec, key: StageKey, backend: str = "pytorchjob", *, name: str | None = None, cycle: int = 0,
           image: str = IMAGE, pvc: str = PVC) -> StageObject:
    return build_stage_object(OWNER, spec, key, _config(spec, key), name=name or child_name(OWNER.name, key, cycle),
                              image=image, pvc=pvc, backend=backend, cycle=cycle)


def _cases() -> Iterator[tuple[str, SafetyEvolutionSpec, StageKey, str]]:
    for spec_name, spec in SPECS.items():
        for key in STAGES:
            for backend in (BACKENDS if key.stage.startswith("train") else ["pytorchjob"]):
                if backend == "job" and spec.training.workers and key.stage.startswith("train"):
                    continue  # a plain Job cannot run workers (see test_job_backend_rejects_workers)
                yield f"{spec_name}-{key.stage}-r{key.round}-{backend}", spec, key, backend


CASES = list(_cases())
IDS = [c[0] for c in CASES]


def pod_specs(obj: StageObject) -> list[dict[str, Any]]:
    """Every pod template spec of a Job or PyTorchJob."""
    if obj.kind == "Job":
        return [obj.body["spec"]["template"]["spec"]]
    if obj.kind == "PyTorchJob":
        return [r["template"]["spec"] for r in obj.body["spec"]["pytorchReplicaSpecs"].values()]
    return []


def pod_labels(obj: StageObject) -> list[dict[str, str]]:
    if obj.kind == "Job":
        return [obj.body["spec"]["template"]["metadata"]["labels"]]
    if obj.kind == "PyTorchJob":
        return [r["template"]["metadata"]["labels"] for r in obj.body["spec"]["pytorchReplicaSpecs"].values()]
    return [o["metadata"]["labels"] for o in obj.body["spec"]["podTemplateOverrides"]] + [obj.body["spec"]["labels"]]


def stage_containers(obj: StageObject) -> list[dict[str, Any]]:
    return [c for pod in pod_specs(obj) for c in pod["containers"]]


def env_of(obj: StageObject) -> list[list[dict[str, Any]]]:
    if obj.kind == "TrainJob":
        return [obj.body["spec"]["trainer"]["env"]]
    return [c["env"] for c in stage_containers(obj)]


def commands_of(obj: StageObject) -> list[Any]:
    if obj.kind == "TrainJob":
        return [obj.body["spec"]["trainer"]["command"]]
    return [c["command"] for c in stage_containers(obj)]


def resources_of(obj: StageObject) -> list[dict[str, Any]]:
    if obj.kind == "TrainJob":
        return [obj.body["spec"]["trainer"]["resourcesPerNode"]]
    return [c["resources"] for c in stage_containers(obj)]


def scheduling_of(obj: StageObject) -> list[dict[str, Any]]:
    if obj.kind == "TrainJob":
        return [o["spec"] for o in obj.body["spec"]["podTemplateOverrides"]]
    return pod_specs(obj)


def kubelet_expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of env values and args (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2:end]
                    out.append(env[name] if name in env else value[i:end + 1])
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def container_environment(env: list[dict[str, Any]], secrets: dict[str, str]) -> dict[str, str]:
    """What the process sees: values expanded in order, as the kubelet does."""
    seen: dict[str, str] = {}
    for item in env:
        if "valueFrom" in item:
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                seen[item["name"]] = secrets.get(f"{ref['name']}/{ref['key']}", "") if ref.get("optional") else secrets[f"{ref['name']}/{ref['key']}"]
            else:
                seen[item["name"]] = f"<{json.dumps(source, sort_keys=True)}>"
        else:
            seen[item["name"]] = kubelet_expand(item["value"], seen)
    return seen


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _kubeflow_validator(filename: str) -> jsonschema.protocols.Validator:
    k8s = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{kubernetes_validate.latest_version()}-local-strict" / "_definitions.json"
    definitions = Resource.from_contents(json.loads(k8s.read_text()))
    schema = json.loads((SCHEMAS / filename).read_text())
    registry = Registry().with_resources([(definitions.id(), definitions), (schema["$id"], Resource.from_contents(schema))])
    return jsonschema.Draft202012Validator(schema, registry=registry)


PYTORCHJOB_SCHEMA = _kubeflow_validator("pytorchjob-kubeflow.org-v1.json")
TRAINJOB_SCHEMA = _kubeflow_validator("trainjob-trainer.kubeflow.org-v1alpha1.json")


# --------------------------------------------------------------------------- kinds and schemas


@pytest.mark.parametrize(
    "stage, backend, kind",
    [(s, b, "Job") for s in ("initialize", "attack", "pairs", "evaluate") for b in BACKENDS]
    + [(s, "pytorchjob", "PyTorchJob") for s in ("train-target", "train-redteam")]
    + [(s, "trainjob", "TrainJob") for s in ("train-target", "train-redteam")]
    + [(s, "job", "Job") for s in ("train-target", "train-redteam")],
)
def test_kind_by_stage_and_backend(stage: str, backend: str, kind: str):
    assert child_kind(stage, backend).kind == kind
    obj = _build(SPECS["defaults"], K(1 if stage != "initialize" else 0, stage), backend)
    assert (obj.kind, obj.body["kind"], obj.child_kind.api_version) == (kind, kind, obj.body["apiVersion"])
    assert obj.child_kind.api_version == (f"{obj.child_kind.group}/v1" if kind != "TrainJob" else f"{obj.child_kind.group}/v1alpha1")
    assert obj.name == obj.body["metadata"]["name"]


@pytest.mark.parametrize("case, spec, key, backend", CASES, ids=IDS)
def test_built_object_matches_its_published_schema(case, spec, key, backend):
    obj = _build(spec, key, backend)
    if obj.kind == "Job":
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj.body, version, strict=True)
    elif obj.kind == "PyTorchJob":
        PYTORCHJOB_SCHEMA.validate(obj.body)
    else:
        TRAINJOB_SCHEMA.validate(obj.body)
    json.dumps(obj.body)  # plain JSON, ready for the API client


def test_every_child_kind_is_created_with_granted_rbac():
    granted = {(group, resource) for group, resource, verb, _ in API_CALLS if verb == "create"}
    for backend in BACKENDS:
        obj = _build(SPECS["defaults"], K(1, "train-target"), backend)
        assert (obj.child_kind.group, obj.child_kind.plural) in granted, obj.kind
    assert ("batch", "jobs") in granted


def test_the_schemas_reject_what_the_api_would_prune_or_refuse():
    obj = _build(SPECS["untrusted"], K(1, "train-target"), "pytorchjob")
    bad = copy.deepcopy(obj.body)
    bad["spec"]["pytorchReplicaSpecs"]["Launcher"] = bad["spec"]["pytorchReplicaSpecs"]["Master"]
    with pytest.raises(jsonschema.ValidationError):
        PYTORCHJOB_SCHEMA.validate(bad)
    bad = copy.deepcopy(obj.body)
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["comand"] = ["x"]
    with pytest.raises(jsonschema.ValidationError):
        PYTORCHJOB_SCHEMA.validate(bad)
    tj = _build(SPECS["untrusted"], K(1, "train-target"), "trainjob")
    bad = copy.deepcopy(tj.body)
    bad["spec"]["podTemplateOverrides"][0]["spec"]["containers"][0]["command"] = ["x"]  # not overridable
    with pytest.raises(jsonschema.ValidationError):
        TRAINJOB_SCHEMA.validate(bad)
    bad = copy.deepcopy(tj.body)
    bad["metadata"]["name"] = "1abc"
    with pytest.raises(jsonschema.ValidationError):
        TRAINJOB_SCHEMA.validate(bad)


# --------------------------------------------------------------------------- command, config and untrusted text


@pytest.mark.parametrize("case, spec, key, backend", CASES, ids=IDS)
def test_command_is_an_argument_list_and_config_travels_in_env(case, spec, key, backend):
    obj = _build(spec, key, backend)
    for command in commands_of(obj):
        tail = stage_command(key.stage)
        assert tail == ["seas-runtime", key.stage, "--config-env", CONFIG_ENV, "--termination-log", TERMINATION_LOG]
        # Training stages may run under torchrun (see the torchrun tests below); the stage command is always the tail.
        assert command == tail or (command[0] == "torchrun" and command[command.index("--no-python") + 1:] == tail)
        assert all(isinstance(arg, str) for arg in command)
        assert not {"sh", "bash", "/bin/sh", "/bin/bash", "-c"} & set(command)
    for container in stage_containers(obj):
        assert "args" not in container
    assert "args" not in (obj.body["spec"].get("trainer") or {})
    for env in env_of(obj):
        names = [e["name"] for e in env]
        assert len(names) == len(set(names))
        seen = container_environment(env, {"hf-token/token": "hf_secret"})
        config = parse_stage_config(seen[CONFIG_ENV])
        assert config.stage == key.stage and config.round == key.round
        assert json.loads(seen[CONFIG_ENV]) == dump_stage_config(_config(spec, key))
        mount = spec.storage.mountPath.rstrip("/")
        assert seen["SEAS_CACHE_DIR"] == f"{mount}/.cache"
        assert seen["HF_HOME"] == f"{mount}/.cache/huggingface"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", STAGES, ids=[f"{k.stage}-r{k.round}" for k in STAGES])
def test_untrusted_strings_only_reach_the_config_env_value(key: StageKey, backend: str):
    spec = SPECS["untrusted"]
    if backend == "job" and key.stage.startswith("train"):
        spec = spec.model_copy(update={"training": spec.training.model_copy(update={"workers": 0})})
    obj = _build(spec, key, backend)
    config = _config(spec, key)
    expected_markers = [m for m in ("rm -rf", "reboot") if m in json.dumps(dump_stage_config(config))]
    found = [(path, text) for path, text in _strings(obj.body) if any(m in text for m in ("rm -rf", "reboot", "$(HF_TOKEN)", "$(HOME)"))]
    for path, text in found:
        assert re.search(r"\.env\[0\]\.value$", path), f"untrusted text at {path}"
    assert bool(found) == bool(expected_markers)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dollar_references_in_the_spec_cannot_pull_in_the_secret(backend: str):
    spec = _spec(target={"model": "$(HF_TOKEN)"}, redTeam={"model": "$$(HF_TOKEN)"}, hubTokenSecret={"name": "hf-token"})
    key = K(1, "train-target") if backend != "job" else K(1, "attack")
    obj = _build(spec, key, backend)
    for env in env_of(obj):
        seen = container_environment(env, {"hf-token/token": "hf_secret"})
        assert "hf_secret" not in seen[CONFIG_ENV]
        assert json.loads(seen[CONFIG_ENV]) == dump_stage_config(_config(spec, key))
        assert [e["name"] for e in env][-1] == "HF_TOKEN"
    assert escape_env_value("a$b$$c$(X)") == "a$$b$$$$c$$(X)"
    assert kubelet_expand(escape_env_value("a$b$$c$(X)"), {"X": "leak"}) == "a$b$$c$(X)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_hf_token_only_when_a_secret_is_named(spec_name: str, backend: str):
    spec = SPECS[spec_name]
    if backend == "job" and spec.training.workers:
        return
    obj = _build(spec, K(1, "train-target"), backend)
    for env in env_of(obj):
        tokens = [e for e in env if e["name"] == "HF_TOKEN"]
        if spec.hubTokenSecret is None:
            assert tokens == []
        else:
            assert tokens == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.hubTokenSecret.name, "key": spec.hubTokenSecret.key}}}]
            assert "value" not in tokens[0]


# --------------------------------------------------------------------------- resources and scheduling


@pytest.mark.parametrize("case, spec, key, backend", CASES, ids=IDS)
def test_resources_gpus_and_scheduling(case, spec, key, backend):
    obj = _build(spec, key, backend)
    gpu = spec.resources.gpuResource
    for resources in resources_of(obj):
        if key.stage == "pairs":
            assert gpu not in resources["limits"] and gpu not in resources["requests"]
            assert resources["requests"]["cpu"] == "1" and resources["limits"]["memory"] == resources["requests"]["memory"]
            continue
        disk = spec.resources.ephemeralStorage
        assert resources["requests"] == {"cpu": spec.resources.cpu, "memory": spec.resources.memory, "ephemeral-storage": disk}
        assert resources["limits"]["memory"] == spec.resources.memory
        assert resources["limits"]["ephemeral-storage"] == disk
        if spec.resources.gpus:
            assert resources["limits"][gpu] == str(spec.resources.gpus)
            assert [r for r in resources["limits"] if "/" in r] == [gpu]  # no nvidia.com/gpu beside a MIG slice
        else:
            assert gpu not in resources["limits"]
    # spec.resources.nodeSelector/tolerations (deprecated) still apply, under spec.pod's.
    node_selector = {**spec.resources.nodeSelector, **spec.pod.nodeSelector}
    tolerations = [t.model_dump(exclude_none=True) for t in [*spec.resources.tolerations, *spec.pod.tolerations]]
    for pod in scheduling_of(obj):
        if node_selector:
            assert pod["nodeSelector"] == node_selector
        else:
            assert "nodeSelector" not in pod
        assert pod.get("tolerations", []) == tolerations
        shm = [v for v in pod["volumes"] if v["name"] == "dshm"]
        assert bool(shm) == (key.stage in GPU_STAGES and spec.resources.gpus > 0)
        if shm:  # a runaway writer to /dev/shm is bounded, not the node's memory
            assert shm[0]["emptyDir"] == {"medium": "Memory", "sizeLimit": spec.resources.shmSize}


def test_tolerations_keep_only_what_was_set():
    obj = _build(SPECS["untrusted"], K(1, "attack"))
    assert obj.body["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "ml"},
    ]


@pytest.mark.parametrize("field, value", [("cpu", "four"), ("memory", "32 GB"), ("cpu", "")])
def test_bad_quantities_fail_before_the_api_server(field: str, value: str):
    spec = _spec(**{f"resources__{field}": value})
    with pytest.raises(ValueError, match=f"spec.resources.{field}"):
        _build(spec, K(1, "attack"))


# --------------------------------------------------------------------------- metadata, ownership, security


@pytest.mark.parametrize("case, spec, key, backend", CASES, ids=IDS)
def test_owner_reference_and_labels(case, spec, key, backend):
    obj = _build(spec, key, backend, cycle=0)
    meta = obj.body["metadata"]
    assert meta["namespace"] == OWNER.namespace
    assert meta["ownerReferences"] == [{
        "apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "name": OWNER.name, "uid": OWNER.uid,
        "controller": True, "blockOwnerDeletion": True,
    }]
    expected = {
        "app.kubernetes.io/managed-by": "seas-operator", LABEL_EVOLUTION: OWNER.name, LABEL_ROUND: str(key.round),
        LABEL_STAGE: key.stage, LABEL_CYCLE: "0", LABEL_CHILD: obj.name,
    }
    # spec.pod.labels go on the object (where Kueue reads its queue) and its pods; a TrainJob's spec.labels stay ours.
    assert meta["labels"] == {**spec.pod.labels, **expected}
    for labels in pod_labels(obj)[:-1] if obj.kind == "TrainJob" else pod_labels(obj):
        assert labels == {**spec.pod.labels, **expected}
    if obj.kind == "TrainJob":
        assert obj.body["spec"]["labels"] == expected
    assert child_selector(obj.name) == f"{LABEL_CHILD}={obj.name}"


def test_cycle_label_and_names_of_later_cycles():
    key = K(1, "evaluate")
    obj = _build(SPECS["defaults"], key, cycle=3)
    assert obj.name == "llama3-8b-c3-r1-evaluate"
    assert obj.body["metadata"]["labels"][LABEL_CYCLE] == "3"


@pytest.mark.parametrize("case, spec, key, backend", CASES, ids=IDS)
def test_pods_run_unprivileged(case, spec, key, backend):
    obj = _build(spec, key, backend)
    if obj.kind == "TrainJob":
        override = obj.body["spec"]["podTemplateOverrides"][0]["spec"]
        pods, containers = [override], override["containers"]
    else:
        pods, containers = pod_specs(obj), stage_containers(obj)
        for pod in pods:
            assert pod["restartPolicy"] == "Never"
            assert pod["automountServiceAccountToken"] is False
    for pod in pods:
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001 and sc["fsGroup"] == 10001
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "artifacts", "persistentVolumeClaim": {"claimName": spec.storage.pvc or PVC}} in pod["volumes"]
    for container in containers:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        assert {"name": "artifacts", "mountPath": spec.storage.mountPath} in container["volumeMounts"]
        if obj.kind != "TrainJob":
            assert container["terminationMessagePath"] == TERMINATION_LOG == "/dev/termination-log"
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
            assert container["name"] == kind_named(obj.kind).container
            assert container["image"] == (spec.image or IMAGE)


@pytest.mark.parametrize("stage", ["attack", "pairs", "evaluate", "train-target"])
def test_job_spec(stage: str):
    spec = _spec(activeDeadlineSeconds=7200)
    obj = _build(spec, K(1, stage), "job")
    job = obj.body["spec"]
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] == 7200
    assert "ttlSecondsAfterFinished" not in job
    assert job["template"]["spec"]["containers"][0]["name"] == "stage"
    rules = job["podFailurePolicy"]["rules"]
    # A drained node costs no retry; bad config (2) or bad data / unloadable model (3) fails at once.
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "stage", "operator": "In", "values": [2, 3]}


def test_bad_disk_or_shm_quantity_is_a_spec_error():
    with pytest.raises(ValueError, match="spec.resources.ephemeralStorage"):
        _build(_spec(resources__ephemeralStorage="lots"), K(1, "attack"), "job")
    with pytest.raises(ValueError, match="spec.resources.shmSize"):
        _build(_spec(resources__shmSize="8 GB"), K(1, "attack"), "job")


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_pytorchjob_master_and_workers(workers: int):
    spec = _spec(training__workers=workers, activeDeadlineSeconds=3600)
    obj = _build(spec, K(1, "train-redteam"), "pytorchjob")
    body = obj.body["spec"]
    replicas = body["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert ("Worker" in replicas) == (workers > 0)
    if workers:
        assert replicas["Worker"]["replicas"] == workers
        assert replicas["Worker"]["template"] == replicas["Master"]["template"]
        assert replicas["Worker"]["template"] is not replicas["Master"]["template"]
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        assert [c["name"] for c in replica["template"]["spec"]["containers"]] == ["pytorch"]
    assert body["runPolicy"] == {"backoffLimit": 0, "activeDeadlineSeconds": 3600, "cleanPodPolicy": "Running"}


@pytest.mark.parametrize("workers", [0, 2])
def test_trainjob_shape(workers: int):
    spec = _spec(training__workers=workers, hubTokenSecret={"name": "hf"}, resources__gpus=4)
    obj = _build(spec, K(1, "train-target"), "trainjob")
    body = obj.body["spec"]
    assert body["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime", "apiGroup": "trainer.kubeflow.org"}
    trainer = body["trainer"]
    assert trainer["numNodes"] == workers + 1
    assert trainer["image"] == IMAGE
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "4"
    override = body["podTemplateOverrides"][0]
    assert override["targetJobs"] == [{"name": "node"}]
    assert [c["name"] for c in override["spec"]["containers"]] == ["node"]
    assert "env" not in override["spec"]["containers"][0]  # the "node" container's env only goes through spec.trainer
    assert kind_named("TrainJob").container == "node"


def test_job_backend_rejects_workers():
    spec = _spec(training__workers=2)
    with pytest.raises(ValueError, match="workers"):
        _build(spec, K(1, "train-target"), "job")
    _build(spec, K(1, "attack"), "job")  # only training cares


# --------------------------------------------------------------------------- operator defaults and spec overrides


@pytest.mark.parametrize(
    "spec_backend, default, expected",
    [(None, "pytorchjob", "pytorchjob"), (None, "trainjob", "trainjob"), (None, "job", "job"),
     ("job", "pytorchjob", "job"), ("trainjob", "job", "trainjob"), ("pytorchjob", "trainjob", "pytorchjob")],
)
def test_training_backend_prefers_the_spec(spec_backend, default, expected):
    spec = _spec(training__backend=spec_backend)
    assert training_backend(spec, default) == expected
    obj = _build(spec, K(1, "train-target"), default)
    assert obj.kind == {"pytorchjob": "PyTorchJob", "trainjob": "TrainJob", "job": "Job"}[expected]


def test_unknown_operator_default_backend_is_an_error():
    with pytest.raises(ValueError, match="backend"):
        training_backend(_spec(), "mpijob")


def test_spec_image_and_pvc_override_the_operator_defaults():
    spec = _spec(image="registry.example/rt:1", storage={"pvc": "team-pvc"})
    job = _build(spec, K(1, "attack"), image="default/image:1", pvc="default-pvc").body
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/rt:1"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-pvc"
    plain = _build(_spec(), K(1, "attack"), image="default/image:1", pvc="default-pvc").body["spec"]["template"]["spec"]
    assert plain["containers"][0]["image"] == "default/image:1"
    assert plain["volumes"][0]["persistentVolumeClaim"]["claimName"] == "default-pvc"


@pytest.mark.parametrize(
    "name, backend, workers, ok",
    [
        ("a" * 63, "job", 0, True),
        ("a" * 64, "job", 0, False),
        ("Upper-case", "job", 0, False),
        ("3b-model-r1-attack", "job", 0, True),
        ("3b-model-r1-train-target", "pytorchjob", 0, False),
        ("3b-model-r1-train-target", "trainjob", 0, False),
        ("a" * 54, "pytorchjob", 0, True),   # <name>-master-0
        ("a" * 55, "pytorchjob", 0, False),
        ("a" * 54, "pytorchjob", 10, True),   # <name>-worker-9
        ("a" * 54, "pytorchjob", 11, False),  # <name>-worker-10
        ("a" * 63, "trainjob", 0, True),
    ],
)
def test_child_names_are_checked(name: str, backend: str, workers: int, ok: bool):
    spec = _spec(training__workers=workers)
    key = K(1, "train-target") if backend != "job" else K(1, "attack")
    if ok:
        assert _build(spec, key, backend, name=name).name == name
    else:
        with pytest.raises(ValueError):
            _build(spec, key, backend, name=name)


def test_building_is_deterministic_and_pure():
    spec = SPECS["untrusted"]
    key = K(1, "train-target")
    config = _config(spec, key)
    before = copy.deepcopy(config)
    a = build_stage_object(OWNER, spec, key, config, name="x-r1-train-target", image=IMAGE, pvc=PVC, backend="pytorchjob")
    b = build_stage_object(OWNER, spec, key, config, name="x-r1-train-target", image=IMAGE, pvc=PVC, backend="pytorchjob")
    assert a == b and json.dumps(a.body, sort_keys=True) == json.dumps(b.body, sort_keys=True)
    assert config == before


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="backend"):
        child_kind(Stage.TRAIN_TARGET, "mpijob")


@pytest.mark.parametrize(
    "key, cycle, attempt, name",
    [
        (K(0, "evaluate"), 0, 0, "demo-r0-evaluate"),
        (K(3, "train-redteam"), 0, 0, "demo-r3-train-redteam"),
        (K(1, "attack"), 2, 0, "demo-c2-r1-attack"),
        (K(1, "attack"), 0, 2, "demo-r1-attack-retry2"),
    ],
)
def test_child_names_are_deterministic(key, cycle, attempt, name):
    assert child_name("demo", key, cycle, attempt) == name


# --------------------------------------------------------------------------- stage pod template (spec.pod) and GPU resource


def _pods_and_containers(obj: StageObject) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod specs (TrainJob: its override) and pod template metadata of every pod the child makes."""
    if obj.kind == "TrainJob":
        overrides = obj.body["spec"]["podTemplateOverrides"]
        return [o["spec"] for o in overrides], [o["metadata"] for o in overrides]
    if obj.kind == "Job":
        return [obj.body["spec"]["template"]["spec"]], [obj.body["spec"]["template"]["metadata"]]
    replicas = obj.body["spec"]["pytorchReplicaSpecs"].values()
    return [r["template"]["spec"] for r in replicas], [r["template"]["metadata"] for r in replicas]


@pytest.mark.parametrize("case, spec, key, backend", [c for c in CASES if c[0].startswith("platform-")],
                         ids=[c[0] for c in CASES if c[0].startswith("platform-")])
def test_spec_pod_reaches_every_pod_of_every_kind(case, spec, key, backend):
    obj = _build(spec, key, backend)
    pods, metas = _pods_and_containers(obj)
    assert len(pods) == (2 if obj.kind == "PyTorchJob" else 1)  # Master and Worker alike
    for pod, meta in zip(pods, metas):
        assert pod["serviceAccountName"] == "seas-stage"
        assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}, {"name": "mirror-pull"}]
        assert pod["affinity"] == spec.pod.affinity
        assert pod["nodeSelector"] == {"pool": "gpu", "zone": "a", "nvidia.com/mig.config": "all-1g.10gb"}  # spec.pod wins "pool"
        assert meta["annotations"] == spec.pod.annotations  # annotations are literal: no $ expansion there
        assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team-a"
        if obj.kind != "TrainJob":
            assert pod["automountServiceAccountToken"] is False  # an identity for the cloud, no Kubernetes API token
    assert obj.body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team-a"
    for env in env_of(obj):
        names = [e["name"] for e in env]
        user = ["HTTPS_PROXY", "HF_ENDPOINT", "NODE_NAME", "WANDB_API_KEY"]
        # The operator's own first (the config at [0]), spec.pod.env in its order, the hub token last.
        assert names[:3] == [CONFIG_ENV, "SEAS_CACHE_DIR", "HF_HOME"] and names[-1] == "HF_TOKEN"
        assert [n for n in names if n in user] == user and len(names) == len(set(names))
        assert all(n.startswith("SEAS_") or n in user for n in names[3:-1])
        seen = container_environment(env, {"hf-token/token": "hf_secret", "wandb/key": "wb"})
        assert seen["HF_ENDPOINT"] == "https://hf-mirror.internal/$(HOME)"  # a CR string is data, not a reference
        assert seen["WANDB_API_KEY"] == "wb"
        assert next(e for e in env if e["name"] == "NODE_NAME")["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


PRIORITY_AND_ENV_FROM = {
    "priorityClassName": "gpu-batch-high",
    "envFrom": [{"configMapRef": {"name": "proxy-env"}}, {"secretRef": {"name": "s3-creds", "optional": True}, "prefix": "S3_"}],
}


@pytest.mark.parametrize("key, backend", [(K(1, "attack"), "pytorchjob"), (K(1, "train-target"), "pytorchjob"),
                                          (K(1, "train-target"), "job"), (K(1, "train-target"), "trainjob")])
def test_priority_class_and_env_from(key: StageKey, backend: str):
    """Jobs and PyTorchJobs carry both (and validate); a TrainJob cannot express them, so it is a spec error, never a silent drop."""
    spec = _spec(pod=PRIORITY_AND_ENV_FROM, training__workers=0 if backend == "job" else 1)
    if backend == "trainjob":
        with pytest.raises(ValueError, match=r"spec.pod.envFrom .*TrainJob"):
            _build(spec, key, backend)
        with pytest.raises(ValueError, match=r"spec.pod.priorityClassName .*TrainJob"):
            _build(_spec(pod={"priorityClassName": "gpu-batch-high"}), key, backend)
        return
    obj = _build(spec, key, backend)
    if obj.kind == "Job":
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj.body, version, strict=True)
    else:
        PYTORCHJOB_SCHEMA.validate(obj.body)
    for pod in pod_specs(obj):
        assert pod["priorityClassName"] == "gpu-batch-high"
        assert pod["containers"][0]["envFrom"] == [
            {"configMapRef": {"name": "proxy-env"}}, {"secretRef": {"name": "s3-creds", "optional": True}, "prefix": "S3_"},
        ]


D = PodTemplateSpec.model_validate


@pytest.mark.parametrize(
    "defaults, own, expected",
    [
        # single values: the CR's when set, else the operator's
        ({"serviceAccountName": "default-sa"}, {}, {"serviceAccountName": "default-sa"}),
        ({"serviceAccountName": "default-sa"}, {"serviceAccountName": "mine"}, {"serviceAccountName": "mine"}),
        ({"priorityClassName": "low"}, {"priorityClassName": "high"}, {"priorityClassName": "high"}),
        # affinity is replaced whole, never merged into a mix of two intents
        ({"affinity": {"nodeAffinity": {"a": 1}, "podAntiAffinity": {"b": 2}}}, {"affinity": {"nodeAffinity": {"c": 3}}},
         {"affinity": {"nodeAffinity": {"c": 3}}}),
        # maps: key by key, the CR wins a key
        ({"labels": {"kueue.x-k8s.io/queue-name": "shared", "org": "ml"}}, {"labels": {"kueue.x-k8s.io/queue-name": "team-a"}},
         {"labels": {"kueue.x-k8s.io/queue-name": "team-a", "org": "ml"}}),
        ({"annotations": {"a": "1"}}, {"annotations": {"b": "2"}}, {"annotations": {"a": "1", "b": "2"}}),
        ({"nodeSelector": {"pool": "gpu"}}, {"nodeSelector": {"pool": "h100", "zone": "b"}}, {"nodeSelector": {"pool": "h100", "zone": "b"}}),
        # env by name: the CR wins a name, the operator's others stay
        ({"env": [{"name": "HTTPS_PROXY", "value": "http://p:1"}, {"name": "NO_PROXY", "value": ".svc"}]},
         {"env": [{"name": "NO_PROXY", "value": ".svc,.internal"}, {"name": "EXTRA", "value": "1"}]},
         {"env": [{"name": "HTTPS_PROXY", "value": "http://p:1"}, {"name": "NO_PROXY", "value": ".svc,.internal"}, {"name": "EXTRA", "value": "1"}]}),
        # lists: both, the operator's first, no duplicates
        ({"imagePullSecrets": ["org-pull"]}, {"imagePullSecrets": ["team-pull", "org-pull"]}, {"imagePullSecrets": ["org-pull", "team-pull"]}),
        ({"tolerations": [{"key": "gpu", "operator": "Exists"}]}, {"tolerations": [{"key": "gpu", "operator": "Exists"}, {"key": "spot", "operator": "Exists"}]},
         {"tolerations": [{"key": "gpu", "operator": "Exists"}, {"key": "spot", "operator": "Exists"}]}),
        ({"envFrom": [{"configMapRef": {"name": "org"}}]}, {"envFrom": [{"secretRef": {"name": "team"}}]},
         {"envFrom": [{"configMapRef": {"name": "org"}}, {"secretRef": {"name": "team"}}]}),
    ],
)
def test_operator_defaults_merge_under_spec_pod(defaults, own, expected):
    merged = merge_pod_templates(D(defaults), D(own))
    assert merged == D(expected)
    # Through the builder: the merged template is what the pods get.
    spec = _spec(pod=own)
    pod = stage_pod(spec, D(defaults))
    assert pod == merged
    obj = _build_with(spec, K(1, "attack"), pod)
    body = obj.body["spec"]["template"]
    if "serviceAccountName" in expected:
        assert body["spec"]["serviceAccountName"] == expected["serviceAccountName"]
    if "labels" in expected:
        assert expected["labels"].items() <= body["metadata"]["labels"].items()
    if "env" in expected:
        user = [e for e in body["spec"]["containers"][0]["env"] if not e["name"].startswith("SEAS_") and e["name"] != "HF_HOME"]
        assert user == expected["env"]
    if "affinity" not in expected:  # the affinity rows hold placeholders, not real affinity terms
        kubernetes_validate.validate(obj.body, KUBE_VERSIONS[-1], strict=True)


def _build_with(spec: SafetyEvolutionSpec, key: StageKey, pod: PodTemplateSpec, backend: str = "job") -> StageObject:
    return build_stage_object(OWNER, spec, key, _config(spec, key), name=child_name(OWNER.name, key, 0), image=IMAGE, pvc=PVC,
                              backend=backend, pod=pod)


def test_the_legacy_node_selector_applies_under_spec_pod_and_operator_defaults_under_both():
    spec = _spec(resources__nodeSelector={"pool": "old", "zone": "a"}, resources__tolerations=[{"key": "old", "operator": "Exists"}],
                 pod={"nodeSelector": {"pool": "new"}, "tolerations": [{"key": "new", "operator": "Exists"}]})
    pod = stage_pod(spec, D({"nodeSelector": {"pool": "default", "site": "x"}, "tolerations": [{"key": "default", "operator": "Exists"}]}))
    assert pod.nodeSelector == {"pool": "new", "site": "x", "zone": "a"}
    assert [t.key for t in pod.tolerations] == ["default", "old", "new"]


def test_our_labels_win_even_over_a_template_that_skipped_validation():
    """Validation rejects seas.dev/* keys; the builder still writes ours last, so selectors and ownership cannot be hijacked."""
    forged = PodTemplateSpec.model_construct(**{**PodTemplateSpec().__dict__, "labels": {LABEL_EVOLUTION: "other", LABEL_CHILD: "x", "team": "a"}})
    for backend, key in (("job", K(1, "attack")), ("pytorchjob", K(1, "train-target")), ("trainjob", K(1, "train-target"))):
        obj = _build_with(_spec(), key, forged, backend)
        for labels in [obj.body["metadata"]["labels"], *pod_labels(obj)]:
            assert labels[LABEL_EVOLUTION] == OWNER.name and labels[LABEL_CHILD] == obj.name
        assert obj.body["metadata"]["labels"]["team"] == "a"


@pytest.mark.parametrize(
    "pod, needle",
    [
        ({"labels": {"seas.dev/evolution": "x"}}, "operator's own"),
        ({"labels": {"app.kubernetes.io/managed-by": "me"}}, "operator's own"),
        ({"annotations": {"seas.dev/note": "x"}}, "operator's own"),
        ({"labels": {"team": "a b"}}, "label 'team'"),
        ({"labels": {"Bad_Prefix/x": "1"}}, "prefix"),
        ({"nodeSelector": {"pool": "x" * 64}}, "nodeSelector"),
        ({"env": [{"name": "SEAS_STAGE_CONFIG", "value": "{}"}]}, "reserved"),
        ({"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}, "hubTokenSecret"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "repeat"),
        ({"env": [{"name": "A"}]}, "exactly one of value or valueFrom"),
        ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}, "fieldRef": {"fieldPath": "x"}}}]}, "exactly one"),
        ({"env": [{"name": "1A", "value": "x"}]}, "env name"),
        ({"envFrom": [{"prefix": "X_"}]}, "exactly one of configMapRef or secretRef"),
        ({"envFrom": [{"configMapRef": {"name": "Proxy_Env"}}]}, "DNS subdomain"),
        ({"serviceAccountName": "Seas SA"}, "serviceAccountName"),
        ({"imagePullSecrets": ["Not/A/Name"]}, "imagePullSecrets"),
        ({"affinity": {"nodeAfinity": {}}}, "unknown keys"),
        ({"affinity": {"nodeAffinity": "gpu"}}, "must be an object"),
        ({"affinity": ["nodeAffinity"]}, "affinity"),
        ({"priorityClass": "high"}, "unknown field"),
    ],
)
def test_bad_spec_pod_is_rejected_naming_the_field(pod, needle):
    from pydantic import ValidationError
    from seas_runtime.problems import validation_problems

    with pytest.raises(ValidationError) as info:
        _spec(pod=pod)
    problems = validation_problems(info.value)
    assert any(p.startswith("pod.") and needle in p for p in problems), problems


@pytest.mark.parametrize(
    "name, ok",
    [("nvidia.com/gpu", True), ("nvidia.com/mig-1g.10gb", True), ("nvidia.com/mig-3g.40gb", True), ("amd.com/gpu", True),
     ("gpu.intel.com/i915", True), ("gpu", False), ("nvidia.com/", False), ("kubernetes.io/gpu", False),
     ("node.kubernetes.io/gpu", False), ("NVIDIA.com/gpu", False), ("nvidia.com/mig 1g", False)],
)
def test_gpu_resource_is_an_extended_resource_name(name: str, ok: bool):
    if not ok:
        with pytest.raises(ValueError, match="resources.gpuResource"):
            _spec(resources__gpuResource=name)
        return
    spec = _spec(resources__gpuResource=name, resources__gpus=2)
    obj = _build(spec, K(1, "attack"), "job")
    limits = obj.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits[name] == "2" and ("nvidia.com/gpu" in limits) == (name == "nvidia.com/gpu")
    kubernetes_validate.validate(obj.body, KUBE_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------- torchrun under the training operators (issue 13)

# The environment each controller injects into a stage container, per node rank, as documented in its source:
# kubeflow/training-operator pkg/controller.v1/pytorch/envvar.go + master.go (v1.7+), and kubeflow/trainer
# pkg/runtime/framework/plugins/torch/torch.go (Trainer v2: PET_NODE_RANK from the pod's JOB_COMPLETION_INDEX).
def injected_env(obj: StageObject, node_rank: int) -> dict[str, str]:
    name = obj.name
    if obj.kind == "PyTorchJob":
        replicas = obj.body["spec"]["pytorchReplicaSpecs"]
        nodes = sum(r["replicas"] for r in replicas.values())
        nproc = obj.body["spec"]["nprocPerNode"]
        (port,) = [p["containerPort"] for p in replicas["Master"]["template"]["spec"]["containers"][0]["ports"] if p["name"] == "pytorchjob-port"]
        return {"MASTER_ADDR": f"{name}-master-0", "MASTER_PORT": str(port), "WORLD_SIZE": str(nodes * int(nproc)), "RANK": str(node_rank),
                "PET_NPROC_PER_NODE": nproc, "PET_NODE_RANK": str(node_rank), "PET_NNODES": str(nodes), "PYTHONUNBUFFERED": "0"}
    if obj.kind == "TrainJob":
        trainer = obj.body["spec"]["trainer"]
        return {"PET_NNODES": str(trainer["numNodes"]), "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]), "PET_NODE_RANK": str(node_rank),
                "PET_MASTER_ADDR": f"{name}-node-0-0.{name}", "PET_MASTER_PORT": "29400"}
    return {}


TORCHRUN_CASES = [
    # backend, stage, gpus, workers -> launcher arguments before the stage command ([] = the plain command)
    ("pytorchjob", "train-target", 8, 0, ["torchrun", "--nnodes=1", "--nproc-per-node=8", "--node-rank=$(PET_NODE_RANK)",
                                          "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)", "--no-python"]),
    ("pytorchjob", "train-redteam", 4, 2, ["torchrun", "--nnodes=3", "--nproc-per-node=4", "--node-rank=$(PET_NODE_RANK)",
                                           "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)", "--no-python"]),
    ("pytorchjob", "train-target", 0, 1, ["torchrun", "--nnodes=2", "--nproc-per-node=1", "--node-rank=$(PET_NODE_RANK)",
                                          "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)", "--no-python"]),
    ("trainjob", "train-target", 8, 1, ["torchrun", "--nnodes=2", "--nproc-per-node=8", "--node-rank=$(PET_NODE_RANK)",
                                        "--master-addr=$(PET_MASTER_ADDR)", "--master-port=$(PET_MASTER_PORT)", "--no-python"]),
    ("trainjob", "train-redteam", 1, 0, ["torchrun", "--nnodes=1", "--nproc-per-node=1", "--node-rank=$(PET_NODE_RANK)",
                                         "--master-addr=$(PET_MASTER_ADDR)", "--master-port=$(PET_MASTER_PORT)", "--no-python"]),
    ("job", "train-target", 8, 0, ["torchrun", "--standalone", "--nproc-per-node=8", "--no-python"]),
    ("job", "train-redteam", 2, 0, ["torchrun", "--standalone", "--nproc-per-node=2", "--no-python"]),
    ("job", "train-target", 1, 0, []),
    ("job", "train-target", 0, 0, []),
    ("pytorchjob", "initialize", 4, 0, ["torchrun", "--standalone", "--nproc-per-node=4", "--no-python"]),  # initialize is a Job
    ("pytorchjob", "initialize", 1, 0, []),
    ("pytorchjob", "attack", 8, 0, []),  # generation: one process, vLLM tensor parallel over the GPUs
    ("pytorchjob", "evaluate", 8, 0, []),
    ("pytorchjob", "pairs", 8, 0, []),
]


@pytest.mark.parametrize("backend, stage, gpus, workers, launcher", TORCHRUN_CASES,
                         ids=[f"{b}-{s}-{g}gpu-{w}workers" for b, s, g, w, _ in TORCHRUN_CASES])
def test_training_stages_run_under_torchrun_with_one_process_per_gpu(backend: str, stage: str, gpus: int, workers: int, launcher: list):
    spec = _spec(resources__gpus=gpus, training__workers=workers)
    key = K(0 if stage == "initialize" else 1, stage)
    obj = _build(spec, key, backend)
    for command in commands_of(obj):
        assert command == launcher + stage_command(key.stage)
    nproc = max(gpus, 1) if launcher else 1
    if obj.kind == "PyTorchJob":
        assert obj.body["spec"]["nprocPerNode"] == str(nproc)  # so the injected WORLD_SIZE / PET_NPROC_PER_NODE agree
        for container in stage_containers(obj):
            assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"}]
    else:
        assert all("ports" not in c for c in stage_containers(obj))  # a Job needs none; the Trainer adds 29400 itself
    if obj.kind == "TrainJob":
        assert obj.body["spec"]["trainer"]["numProcPerNode"] == nproc
        # The Trainer's webhook rejects these in spec.trainer.env: they are its own (constants.TorchRunReservedEnvNames).
        assert not {e["name"] for e in obj.body["spec"]["trainer"]["env"]} & {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK",
                                                                                "PET_MASTER_ADDR", "PET_MASTER_PORT"}
    for env in env_of(obj):
        gpu_env = [e["value"] for e in env if e["name"] == "SEAS_GPUS_PER_POD"]
        assert gpu_env == ([str(gpus)] if gpus and stage != "pairs" else [])


@pytest.mark.parametrize("backend, workers, gpus", [("pytorchjob", 2, 4), ("pytorchjob", 0, 1), ("trainjob", 1, 8), ("job", 0, 2)])
def test_torchrun_reads_the_injected_environment_as_one_job(backend: str, workers: int, gpus: int, monkeypatch):
    """Each pod's command, expanded by the kubelet with what its controller injects, is what torchrun needs: the same
    rendezvous for every node, distinct node ranks 0..nodes-1, nodes x GPUs processes in all. (torch parses it; nothing starts.)"""
    import os

    from torch.distributed.run import config_from_args, parse_args

    # config_from_args sets OMP_NUM_THREADS when unset; keep that out of the other tests.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))

    spec = _spec(resources__gpus=gpus, training__workers=workers)
    obj = _build(spec, K(1, "train-target"), backend)
    nodes = workers + 1
    endpoints, ranks = set(), []
    for node_rank in range(nodes):
        env = injected_env(obj, node_rank)
        command = [kubelet_expand(arg, env) for arg in commands_of(obj)[0]]
        assert not any("$(" in arg for arg in command), command  # every reference resolved
        assert command[0] == "torchrun"
        args = parse_args(command[1:])
        config, program, program_args = config_from_args(args)
        assert (program, program_args) == ("seas-runtime", stage_command(Stage.TRAIN_TARGET)[1:])
        assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (nodes, nodes, gpus)
        if backend == "job":
            assert args.standalone
            continue
        assert config.rdzv_backend == "static"
        endpoints.add(config.rdzv_endpoint)
        ranks.append(config.rdzv_configs["rank"])
    if backend != "job":
        expected = {"pytorchjob": f"{obj.name}-master-0:23456", "trainjob": f"{obj.name}-node-0-0.{obj.name}:29400"}[backend]
        assert endpoints == {expected} and ranks == list(range(nodes))


def test_the_gpu_count_reaches_the_runtime_under_the_name_it_reads():
    from seas_operator.builders import GPUS_ENV
    from seas_runtime.engines.vllm_engine import GPUS_ENV as RUNTIME_GPUS_ENV

    assert GPUS_ENV == RUNTIME_GPUS_ENV == "SEAS_GPUS_PER_POD"
