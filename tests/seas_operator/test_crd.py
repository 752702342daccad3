"""The SafetyEvolution CRD: generated from the API models, checked in, structural and valid."""

from __future__ import annotations

import copy
import io
import re
from contextlib import redirect_stdout
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import pytest
import yaml

from seas_operator import api
from seas_operator.api import SafetyEvolutionSpec
from seas_operator.crd import HEADER, NAME_RULE, PHASES, crd_manifest, render_crd, spec_schema, status_schema
from seas_operator.reconcile import Observed, decide
from seas_operator.settings import OperatorSettings
from seas_operator.status import EvolutionStatus, RoundStatus, dump_status
from tests.helpers import ROOT

GENERATED = ROOT / "crds" / "safetyevolution.yaml"
CHART_COPY = ROOT / "charts" / "seas-operator" / "crds" / "safetyevolution.yaml"
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

MINIMAL = {
    "apiVersion": "seas.dev/v1alpha1",
    "kind": "SafetyEvolution",
    "metadata": {"name": "minimal"},
    "spec": {"rounds": 1, "target": {"model": "embedded:smollm2-135m-instruct"}, "redTeam": {"model": "embedded:smollm2-135m-instruct"}},
}


def _crd() -> dict[str, Any]:
    return crd_manifest()


def _root_schema() -> dict[str, Any]:
    return _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def to_jsonschema(node: Any) -> Any:
    """An OpenAPI v3 (CRD) schema as Draft 4 JSON Schema: ``nullable: true`` becomes a null type."""
    if isinstance(node, list):
        return [to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in node:
        out["properties"] = {name: to_jsonschema(sub) for name, sub in node["properties"].items()}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    return out


def pruned_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune (not in the schema and not preserved)."""
    out: list[str] = []
    if isinstance(doc, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if key in props:
                out += pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += pruned_fields(value, extra, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and not (path == ".metadata"):
                out.append(f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(doc):
            out += pruned_fields(value, schema["items"], f"{path}[{i}]")
    return out


def apply_defaults(doc: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it (defaults of absent fields, recursively)."""
    if isinstance(doc, dict) and schema.get("type") == "object":
        for key, sub in (schema.get("properties") or {}).items():
            if key not in doc and "default" in sub:
                doc[key] = copy.deepcopy(sub["default"])
            if key in doc:
                doc[key] = apply_defaults(doc[key], sub)
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in doc]
    return doc


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(to_jsonschema(_root_schema())).validate(doc)


def _evolutions(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "SafetyEvolution"]


# --------------------------------------------------------------------------- generated files


@pytest.mark.parametrize("path", [GENERATED, CHART_COPY], ids=["crds", "chart"])
def test_checked_in_crd_is_the_generated_one(path: Path):
    assert path.is_file(), f"{path} is missing: run `seas crd > crds/safetyevolution.yaml` and copy it to {CHART_COPY}"
    assert path.read_text() == render_crd(), (
        f"{path.relative_to(ROOT)} differs from `seas crd` (the API models changed): run "
        f"`seas crd > crds/safetyevolution.yaml && cp crds/safetyevolution.yaml {CHART_COPY.relative_to(ROOT)}`"
    )


def test_render_is_deterministic_with_header_and_newline():
    text = render_crd()
    assert text == render_crd()
    assert text.startswith(HEADER) and HEADER.startswith("# Generated by `seas crd` from operator/seas_operator/api.py; do not edit.")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert yaml.safe_load(text) == crd_manifest()


def test_seas_crd_command_prints_it():
    from seas_operator.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["crd"]) == 0
    assert out.getvalue() == render_crd()


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_crd_validates_against_the_kubernetes_schema(version: str):
    kubernetes_validate.validate(yaml.safe_load(render_crd()), version, strict=True)


def test_crd_identity_and_printer_columns():
    crd = _crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "safetyevolutions.seas.dev"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("seas.dev", "Namespaced")
    assert spec["names"] == {
        "kind": "SafetyEvolution", "listKind": "SafetyEvolutionList", "plural": "safetyevolutions",
        "singular": "safetyevolution", "shortNames": ["sevo"], "categories": ["seas"],
    }
    assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
    version = spec["versions"][0]
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    expected = {
        "Round": ("integer", ".status.round"),
        "Stage": ("string", ".status.stage"),
        "Direct ASR": ("number", ".status.directASR"),
        "Adv ASR": ("number", ".status.adversarialASR"),
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Age": ("date", ".metadata.creationTimestamp"),
        "Phase": ("string", ".status.phase"),
    }
    for name, (type_, path) in expected.items():
        assert (columns[name]["type"], columns[name]["jsonPath"]) == (type_, path), name
        assert columns[name].get("priority", 0) == 0, f"{name} should show in plain `kubectl get`"
    status_props = status_schema()["properties"]
    for column in columns.values():
        if column["jsonPath"].startswith(".status."):
            field = re.match(r"\.status\.(\w+)", column["jsonPath"]).group(1)
            assert field in status_props, f"printer column {column['name']} reads an undeclared status field"


# --------------------------------------------------------------------------- structural schema


def test_schema_is_structural():
    problems = []
    for path, node in _walk(_root_schema(), "openAPIV3Schema"):
        if "type" not in node:
            problems.append(f"{path}: no type")
        for key in ("$ref", "$defs", "definitions", "title", "anyOf", "oneOf", "allOf", "not", "const"):
            if key in node:
                problems.append(f"{path}: has {key}")
        if node.get("type") == "object" and path != "openAPIV3Schema.metadata":  # root metadata is the API server's
            if not ("properties" in node or "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields")):
                problems.append(f"{path}: object without properties")
            if "properties" in node and "additionalProperties" in node:
                problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties: false")
        for bound, base in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in node and (node[bound] is not True or base not in node):
                problems.append(f"{path}: {bound} must be true beside {base} (OpenAPI v3.0)")
        if "nullable" in node and node["nullable"] is not True:
            problems.append(f"{path}: nullable {node['nullable']!r}")
        if "default" in node:
            if node["default"] is None:
                problems.append(f"{path}: null default")
            else:
                try:
                    jsonschema.Draft4Validator(to_jsonschema(node)).validate(node["default"])
                except jsonschema.ValidationError as exc:
                    problems.append(f"{path}: default {node['default']!r} is invalid: {exc.message}")
        for name in node.get("required") or []:
            if name not in (node.get("properties") or {}):
                problems.append(f"{path}: required {name} is not a property")
    assert not problems, "\n".join(problems)


def test_spec_is_required_and_mirrors_the_model():
    root = _root_schema()
    assert root["required"] == ["spec"]
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    spec = root["properties"]["spec"]
    assert list(spec["properties"]) == list(SafetyEvolutionSpec.model_fields)
    # rounds is required in mode train only: the operator's validation asks for it (spec.rounds: required field is missing).
    assert spec["required"] == ["target", "redTeam"]
    assert spec["description"].startswith("Desired state")


def _models_and_nodes() -> Iterator[tuple[str, type, dict[str, Any]]]:
    """(path, pydantic model, CRD node) for every nested model of the spec."""
    from pydantic import BaseModel

    def visit(path: str, model: type, node: dict[str, Any]):
        yield path, model, node
        for name, info in model.model_fields.items():
            sub = node["properties"][name]
            annotation = info.annotation
            candidates = [annotation, *getattr(annotation, "__args__", ())]
            for candidate in candidates:
                inner = getattr(candidate, "__args__", ())
                for c in (candidate, *inner):
                    if isinstance(c, type) and issubclass(c, BaseModel):
                        yield from visit(f"{path}.{name}", c, sub["items"] if sub["type"] == "array" else sub)

    yield from visit("spec", SafetyEvolutionSpec, spec_schema())


def test_every_model_field_has_its_schema_with_description():
    seen = set()
    for path, model, node in _models_and_nodes():
        seen.add(model.__name__)
        assert list(node["properties"]) == list(model.model_fields), path
        for name, info in model.model_fields.items():
            if info.description:
                assert node["properties"][name]["description"] == info.description, f"{path}.{name}"
    assert {"ModelRef", "LoraSpec", "TolerationSpec", "SecretKeyRef", "StorageSpec", "GatesSpec"} <= seen


@pytest.mark.parametrize(
    "path, expected",
    [
        ("rounds", {"type": "integer", "minimum": 1, "maximum": 100}),
        ("attack.topP", {"type": "number", "minimum": 0.0, "exclusiveMinimum": True, "maximum": 1.0, "default": 0.95}),
        ("training.target.lora.dropout", {"type": "number", "minimum": 0.0, "maximum": 1.0, "exclusiveMaximum": True, "default": 0.0}),
        ("training.beta", {"type": "number", "minimum": 0.0, "exclusiveMinimum": True, "default": 0.1}),
        ("target.maxModelLen", {"type": "integer", "nullable": True, "minimum": 128}),
        ("target.engine", {"type": "string", "enum": ["auto", "transformers", "vllm"], "default": "auto"}),
        ("target.model", {"type": "string", "nullable": True, "minLength": 1}),  # or target.endpoint: a served model
        ("target.endpoint.url", {"type": "string", "pattern": "^https?://\\S+$"}),
        ("attack.maxSeeds", {"type": "integer", "nullable": True, "minimum": 1, "default": 40}),
        ("training.backend", {"type": "string", "nullable": True, "enum": ["pytorchjob", "trainjob", "job"]}),
        ("training.target.lora.targetModules", {"type": "array", "minItems": 1, "items": {"type": "string"}}),
        ("evaluation.knowledgeContexts", {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["none", "false", "random"]}}),
        ("hubTokenSecret", {"type": "object", "nullable": True, "required": ["name"]}),
        ("hubTokenSecret.key", {"type": "string", "default": "token", "minLength": 1}),
        ("storage.mountPath", {"type": "string", "pattern": "^/", "default": "/artifacts"}),
        ("resources.nodeSelector", {"type": "object", "additionalProperties": {"type": "string"}}),
        ("resources.tolerations", {"type": "array"}),
        ("resources.tolerations[].effect", {"type": "string", "nullable": True, "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}),
        ("schedule", {"type": "string", "nullable": True}),
        ("activeDeadlineSeconds", {"type": "integer", "minimum": 60, "default": 21600}),
    ],
)
def test_schema_details(path: str, expected: dict[str, Any]):
    node = spec_schema()
    for part in path.split("."):
        if part.endswith("[]"):
            node = node["properties"][part[:-2]]["items"]
        else:
            node = node["properties"][part]
    for key, value in expected.items():
        assert node.get(key) == value, f"{path}.{key}: {node.get(key)!r} != {value!r}"
    assert "default" in node or "default" not in expected
    if "nullable" not in expected:
        assert "nullable" not in node, path
    if "default" not in expected:
        assert "default" not in node, f"{path} has default {node.get('default')!r}"


def test_metadata_name_rule_matches_the_api_model():
    rule = _root_schema()["x-kubernetes-validations"][0]["rule"]
    assert rule == NAME_RULE
    assert api._DNS_LABEL.pattern in rule and f"<= {api.MAX_NAME}" in rule


# --------------------------------------------------------------------------- documents


def _example_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = [("minimal", MINIMAL)]
    for name in ("evolution.yaml", "gpu-cluster.yaml"):
        path = ROOT / "examples" / name
        if path.is_file():
            docs += [(name, d) for d in _evolutions(path)]
    return docs


@pytest.mark.parametrize("name, doc", _example_docs(), ids=[n for n, _ in _example_docs()])
def test_examples_pass_the_crd_schema_and_lose_nothing(name: str, doc: dict[str, Any]):
    validate(doc)
    assert pruned_fields(doc, _root_schema()) == [], "the API server would drop these fields"


def test_gpu_cluster_example_is_present():
    assert len(_evolutions(ROOT / "examples" / "gpu-cluster.yaml")) == 1


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return doc


@pytest.mark.parametrize(
    "path, value",
    [
        ("spec.rounds", 0),
        ("spec.rounds", 101),
        ("spec.rounds", "3"),
        ("spec.target.model", ""),
        ("spec.target.engine", "tgi"),
        ("spec.attack.topP", 0.0),
        ("spec.training.target.lora.dropout", 1.0),
        ("spec.training.backend", "mpijob"),
        ("spec.training.redTeam.lora.targetModules", []),
        ("spec.evaluation.knowledgeContexts", ["wrong"]),
        ("spec.storage.mountPath", "artifacts"),
        ("spec.resources.nodeSelector", {"gpu": 1}),
        ("spec.resources.tolerations", [{"operator": "Maybe"}]),
        ("spec.hubTokenSecret", {"key": "token"}),
        ("spec.activeDeadlineSeconds", 10),
        ("spec.gates.maxTargetASR", 1.5),
    ],
)
def test_invalid_values_are_rejected_by_the_schema(path: str, value: Any):
    with pytest.raises(jsonschema.ValidationError):
        validate(_set(MINIMAL, path, value))


def test_missing_spec_or_required_fields_are_rejected():
    for doc in ({k: v for k, v in MINIMAL.items() if k != "spec"}, _set(MINIMAL, "spec", {"rounds": 1})):
        with pytest.raises(jsonschema.ValidationError):
            validate(doc)


def test_explicit_nulls_are_accepted_where_the_model_accepts_them():
    doc = _set(_set(_set(MINIMAL, "spec.attack.maxSeeds", None), "spec.hubTokenSecret", None), "spec.target.maxModelLen", None)
    validate(doc)
    spec = SafetyEvolutionSpec.model_validate(doc["spec"])
    assert spec.attack.maxSeeds is None


def test_unknown_fields_would_be_pruned_not_kept():
    doc = _set(MINIMAL, "spec.attack.samplesPerSed", 4)
    assert pruned_fields(doc, _root_schema()) == [".spec.attack.samplesPerSed"]


@pytest.mark.parametrize("name, doc", _example_docs(), ids=[n for n, _ in _example_docs()])
def test_api_server_defaults_agree_with_the_model(name: str, doc: dict[str, Any]):
    """What the API server stores after defaulting parses to the same spec as the original."""
    defaulted = apply_defaults(copy.deepcopy(doc), _root_schema())
    validate(defaulted)
    assert SafetyEvolutionSpec.model_validate(defaulted["spec"]) == SafetyEvolutionSpec.model_validate(doc["spec"])


# --------------------------------------------------------------------------- status


def test_status_fields_are_typed():
    status = status_schema()
    props = status["properties"]
    assert status["type"] == "object"
    assert props["observedGeneration"]["type"] == "integer"
    assert props["phase"]["enum"] == list(PHASES)
    assert {"Pending", "Running", "Suspended", "Succeeded", "Failed", "Degraded"} == set(PHASES)
    assert (props["cycle"]["type"], props["round"]["type"], props["stage"]["type"]) == ("integer", "integer", "string")
    for name in ("directASR", "adversarialASR"):
        assert props[name] == {**props[name], "type": "number", "nullable": True}, name
    assert props["lastProgressTime"]["format"] == "date-time"
    for name in ("promotedModel", "message", "nextScheduleTime"):
        assert props[name]["type"] == "string", name
    conditions = props["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert item["required"] == ["type", "status"] and item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["type"]["enum"] == ["Ready", "Progressing", "Degraded", "SafetyRegressed"]
    round_props = props["rounds"]["items"]["properties"]
    assert set(round_props) == set(RoundStatus.model_fields)
    assert round_props["gate"]["properties"]["passed"]["type"] == "boolean"
    entry = props["stages"]["additionalProperties"]
    assert entry["properties"]["state"]["enum"] == ["running", "waiting", "succeeded", "failed"]
    assert entry["properties"]["result"] == {**entry["properties"]["result"], "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    for name in ("kopf", "activeSpec"):
        assert props[name] == {**props[name], "type": "object", "x-kubernetes-preserve-unknown-fields": True}, name


def test_status_schema_is_generated_from_the_status_model():
    props = status_schema()["properties"]
    assert set(props) == set(EvolutionStatus.model_fields) | {"kopf"}
    for name, field in EvolutionStatus.model_fields.items():
        assert props[name]["description"] == field.description, name
    assert "default" not in render_crd().split("status:", 1)[1].split("subresources:", 1)[0]  # status is written whole


def test_a_realistic_status_validates():
    status = {
        "observedGeneration": 3, "phase": "Running", "cycle": 0, "round": 2, "stage": "train-target", "directASR": 0.25, "adversarialASR": 0.3,
        "promotedModel": "/artifacts/ns/x/c0/r1/train-target/model", "message": "", "lastProgressTime": "2025-01-01T00:00:00Z",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "InProgress", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 3},
        ],
        "rounds": [{"round": 0, "adversarialASR": {"k": 6, "n": 48, "rate": 0.125, "low": 0.0586, "high": 0.247, "confidence": 0.95},
                    "gate": None, "judge": {"type": "refusal-match", "model": None}, "pairs": {"target": 0, "redteam": 0}}],
        "stages": {"r1/attack": {"state": "succeeded", "attempts": 1, "result": {"stage": "attack"}}},
        "kopf": {"progress": {}},
    }
    jsonschema.Draft4Validator(to_jsonschema(status_schema())).validate(status)
    assert pruned_fields(status, status_schema()) == []
    assert pruned_fields({**status, "someFutureField": 1}, status_schema()) == [".someFutureField"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(to_jsonschema(status_schema())).validate({**status, "phase": "Sleeping"})


def test_status_written_by_the_reconciler_validates_and_loses_nothing():
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    body = {**copy.deepcopy(MINIMAL), "metadata": {"name": "minimal", "namespace": "ns", "uid": "u-1", "generation": 1}}
    settings = OperatorSettings()
    statuses = [dump_status(decide(body, Observed(), now, settings).status)]
    bad = {**body, "spec": {"rounds": 0}}
    statuses.append(dump_status(decide(bad, Observed(), now, settings).status))
    validator = jsonschema.Draft4Validator(to_jsonschema(status_schema()))
    for status in statuses:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(status)]
        assert not errors, errors
        assert pruned_fields(status, status_schema()) == []
