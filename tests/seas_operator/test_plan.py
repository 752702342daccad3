"""``seas plan``: the children the operator would create, printed as YAML or JSON that the published schemas accept.

About 25 s on 2 busy cores: every child of six whole cycles is validated against the Kubernetes (1.27 and newest) and Kubeflow schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from seas_operator.cli import main
from tests.helpers import ROOT
from tests.seas_operator.test_builders import KUBE_VERSIONS, PYTORCHJOB_SCHEMA, TRAINJOB_SCHEMA, kubelet_expand

EXAMPLE = str(ROOT / "examples" / "gpu-cluster.yaml")
SEAS_ENV = ("SEAS_RUNTIME_IMAGE", "SEAS_DEFAULT_PVC", "SEAS_DEFAULT_TRAINING_BACKEND", "SEAS_STAGE_POD", "SEAS_ALLOWED_IMAGES",
            "SEAS_MAX_GPUS_PER_STAGE")


@pytest.fixture(autouse=True)
def operator_defaults(monkeypatch):
    """Plans use the operator's settings from the environment: start from the chart's defaults."""
    for name in SEAS_ENV:
        monkeypatch.delenv(name, raising=False)


def run_plan(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def validate(body: dict[str, Any]) -> None:
    """The schema the API server would check ``body`` against (strict: an unknown field fails)."""
    if body["kind"] == "Job":
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(body, version, strict=True)
    elif body["kind"] == "PyTorchJob":
        PYTORCHJOB_SCHEMA.validate(body)
    elif body["kind"] == "TrainJob":
        TRAINJOB_SCHEMA.validate(body)
    else:
        raise AssertionError(f"unexpected kind {body['kind']}")


def write_spec(tmp_path: Path, **spec: Any) -> str:
    document = {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "demo", "namespace": "ml"},
                "spec": {"rounds": 2, "target": {"model": "embedded:smollm2-135m-instruct"}, "redTeam": {"model": "embedded:smollm2-135m-instruct"},
                         "initialization": {"enabled": True}, **spec}}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def master_container(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]


def test_the_gpu_example_plans_a_pytorchjob_whose_pods_run_torchrun(capsys):
    code, out, err = run_plan(capsys, EXAMPLE, "--stage", "train-target")
    assert code == 0, err
    assert out.startswith("---\n# Source: seas plan ") and "r1/train-target (PyTorchJob llama3-8b-r1-train-target)" in out
    (body,) = [d for d in yaml.safe_load_all(out) if d]
    validate(body)
    assert (body["kind"], body["metadata"]["name"], body["metadata"]["namespace"]) == ("PyTorchJob", "llama3-8b-r1-train-target", "llm-safety")
    gpus = int(master_container(body)["resources"]["limits"]["nvidia.com/gpu"])
    for replica in body["spec"]["pytorchReplicaSpecs"].values():
        command = replica["template"]["spec"]["containers"][0]["command"]
        assert command[0] == "torchrun" and f"--nproc-per-node={gpus}" in command
        assert command[command.index("--no-python") + 1:][:2] == ["seas-runtime", "train-target"]
    # The same object as JSON; "r1/train-target" and --round 1 name the same stage.
    code, out_json, _ = run_plan(capsys, EXAMPLE, "--stage", "r1/train-target", "--round", "1", "-o", "json")
    assert code == 0 and json.loads(out_json) == body


def test_the_plan_is_what_the_operator_would_run_after_the_stages_before_it(capsys):
    code, out, err = run_plan(capsys, EXAMPLE, "--stage", "train-target", "--round", "2", "-o", "json")
    assert code == 0, err
    body = json.loads(out)
    env = {e["name"]: e.get("value") for e in master_container(body)["env"]}
    config = json.loads(kubelet_expand(env["SEAS_STAGE_CONFIG"], {}))
    root = "/artifacts/llm-safety/llama3-8b/c0"
    # Round 2 trains round 1's trained target on round 2's pairs, into its own folder.
    assert (config["stage"], config["round"], config["outputDir"]) == ("train-target", 2, f"{root}/r2/train-target")
    assert config["model"]["model"] == f"{root}/r1/train-target/model"
    assert config["pairsFile"] == f"{root}/r2/pairs/target.jsonl"
    assert body["metadata"]["labels"]["seas.dev/round"] == "2"


@pytest.mark.parametrize("backend", ["pytorchjob", "trainjob", "job"])
@pytest.mark.parametrize("output", ["yaml", "json"])
def test_every_planned_child_validates_against_the_kubernetes_and_kubeflow_schemas(capsys, tmp_path, backend: str, output: str):
    path = write_spec(tmp_path, training={"backend": backend, "workers": 0 if backend == "job" else 1},
                      resources={"gpus": 2}, hubTokenSecret={"name": "hf-token"})
    code, out, err = run_plan(capsys, path, "-o", output)
    assert code == 0, err
    if output == "yaml":
        bodies = [d for d in yaml.safe_load_all(out) if d]
    else:
        listed = json.loads(out)
        assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
        bodies = listed["items"]
    names = [b["metadata"]["name"] for b in bodies]
    assert names == ["demo-r0-initialize", "demo-r0-evaluate"] + [f"demo-r{r}-{s}" for r in (1, 2)
                                                                  for s in ("attack", "pairs", "train-target", "train-redteam", "evaluate")]
    kinds = {b["metadata"]["name"]: b["kind"] for b in bodies}
    assert kinds["demo-r1-train-target"] == {"pytorchjob": "PyTorchJob", "trainjob": "TrainJob", "job": "Job"}[backend]
    for body in bodies:
        validate(body)


def test_a_round_plans_its_stages_in_order(capsys, tmp_path):
    code, out, err = run_plan(capsys, write_spec(tmp_path), "--round", "0")
    assert code == 0, err
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out) if d] == ["demo-r0-initialize", "demo-r0-evaluate"]


def test_the_operators_settings_from_the_environment_apply(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SEAS_RUNTIME_IMAGE", "registry.internal/seas-runtime:1.2")
    monkeypatch.setenv("SEAS_DEFAULT_TRAINING_BACKEND", "trainjob")
    code, out, err = run_plan(capsys, write_spec(tmp_path), "--stage", "train-redteam", "-o", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["kind"] == "TrainJob" and body["spec"]["trainer"]["image"] == "registry.internal/seas-runtime:1.2"
    validate(body)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stage", "train"], "seas: unknown stage 'train'; stages: initialize, attack, pairs, train-target, train-redteam, evaluate"),
        (["--stage", "train-target", "--round", "5"], "seas: round 5 is not in llama3-8b: its rounds are 0..3"),
        (["--round", "-1"], "seas: round -1 is not in llama3-8b: its rounds are 0..3"),
        (["--stage", "train-target", "--round", "0"], "seas: llama3-8b runs no train-target in round 0; round 0 runs evaluate"),
        (["--stage", "initialize"], "seas: llama3-8b never runs initialize: its stages are evaluate, attack, pairs, train-target, train-redteam"),
        (["--stage", "r2/attack", "--round", "1"], "seas: --stage 'r2/attack' names round 2 but --round is 1"),
        (["--stage", "round1/attack"], "seas: --stage 'round1/attack': expected a stage name (e.g. train-target) or r<round>/<stage> (e.g. r1/train-target)"),
    ],
)
def test_a_bad_stage_or_round_is_one_line(capsys, argv: list, message: str):
    code, out, err = run_plan(capsys, EXAMPLE, *argv)
    assert (code, out, err) == (2, "", message + "\n")


def test_what_the_operator_would_refuse_is_one_line_too(capsys, monkeypatch):
    monkeypatch.setenv("SEAS_ALLOWED_IMAGES", '["registry.internal/"]')
    code, out, err = run_plan(capsys, EXAMPLE, "--stage", "attack")
    assert code == 2 and out == "" and err.startswith("seas: r1/attack: ") and err.count("\n") == 1 and "registry.internal/" in err
    monkeypatch.setenv("SEAS_DEFAULT_TRAINING_BACKEND", "slurm")
    code, out, err = run_plan(capsys, EXAMPLE, "--stage", "attack")
    assert code == 2 and out == "" and err.startswith("seas: the operator settings in the environment are invalid: ") and err.count("\n") == 1


def test_an_invalid_file_is_reported_like_seas_validate(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: seas.dev/v1alpha1\nkind: SafetyEvolution\nmetadata: {name: demo}\nspec: {rounds: 0}\n")
    code, out, err = run_plan(capsys, str(path))
    assert code == 2 and out == "" and "is not a valid SafetyEvolution" in err and "Traceback" not in err
