"""The operator's policy (chart values policy.allowedImages, policy.maxGPUsPerStage) and stage pod defaults (stagePod):
parsed from the operator's environment, enforced at reconcile as Degraded/InvalidSpec naming the field and what is allowed.

Pure functions and decide() only; the whole file runs in about a second.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from seas_operator.api import SafetyEvolutionSpec
from seas_operator.policy import image_allowed, policy_problems
from seas_operator.pod_template import PodTemplateSpec
from seas_operator.reconcile import Context, Observed, SpecProblem, decide, launch_due
from seas_operator.settings import OperatorSettings, SettingsError, load_settings
from seas_operator.status import dump_status
from seas_runtime.contract import Stage, StageKey
from tests.helpers.factories import done_through

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
ALLOWED = ("registry.example/seas", "ghcr.io/seas-dev/")


def body(spec_overrides=None, status=None, generation=1):
    spec = {"rounds": 1, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"}}
    spec.update(spec_overrides or {})
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u-1", "generation": generation},
            "spec": spec, "status": status or {}}


def settings(**kw) -> OperatorSettings:
    return OperatorSettings(**{"image": "ghcr.io/seas-dev/seas-runtime:0.1.0", "pvc": "artifacts", "backend": "job", **kw})


def degraded(decision) -> dict:
    return next(c for c in dump_status(decision.status)["conditions"] if c["type"] == "Degraded")


# --------------------------------------------------------------------------- the pure check


@pytest.mark.parametrize(
    "image, allowed",
    [
        ("registry.example/seas/runtime:1", True),
        ("registry.example/seas:1", True),
        ("registry.example/seas@sha256:" + "a" * 64, True),
        ("registry.example/seas", True),
        ("registry.example/seas-evil/runtime:1", False),  # a prefix ends on a boundary of the reference
        ("registry.example/seasx:1", False),
        ("ghcr.io/seas-dev/seas-runtime:0.1.0", True),  # a prefix ending in / matches anything below it
        ("ghcr.io/seas-devil/x:1", False),
        ("docker.io/library/ubuntu:24.04", False),
        ("ubuntu", False),
    ],
)
def test_image_prefixes_match_on_reference_boundaries(image: str, allowed: bool):
    assert image_allowed(image, ALLOWED) is allowed
    assert image_allowed(image, ()) is True  # no policy: any image


def _spec(**kw) -> SafetyEvolutionSpec:
    return SafetyEvolutionSpec.model_validate({"rounds": 1, "target": {"model": "a"}, "redTeam": {"model": "b"}, **kw})


@pytest.mark.parametrize(
    "spec, default, allowed, max_gpus, expected",
    [
        (_spec(), "ghcr.io/seas-dev/seas-runtime:1", ALLOWED, None, []),
        (_spec(image="registry.example/seas/rt:2", resources={"gpus": 8}), "x", ALLOWED, 8, []),
        (_spec(image="evil.example/miner:1"), "ghcr.io/seas-dev/seas-runtime:1", ALLOWED, None,
         ["spec.image 'evil.example/miner:1' is not allowed by the operator's policy.allowedImages; "
          "images must start with one of: registry.example/seas, ghcr.io/seas-dev/"]),
        (_spec(), "docker.io/seas/runtime:1", ALLOWED, None,
         ["the operator's default runtime image 'docker.io/seas/runtime:1' (spec.image is unset) is not allowed by its "
          "policy.allowedImages; set spec.image to an image starting with one of: registry.example/seas, ghcr.io/seas-dev/"]),
        (_spec(resources={"gpus": 16}), "any", (), 8,
         ["spec.resources.gpus 16 exceeds the operator's policy.maxGPUsPerStage: at most 8 GPUs per stage pod"]),
        (_spec(resources={"gpus": 1}), "any", (), 0,
         ["spec.resources.gpus 1 exceeds the operator's policy.maxGPUsPerStage: at most 0 GPUs per stage pod"]),
        (_spec(resources={"gpus": 0}), "any", (), 0, []),
        (_spec(image="evil/x:1", resources={"gpus": 2}), "any", ("good/",), 1,
         ["spec.image 'evil/x:1' is not allowed by the operator's policy.allowedImages; images must start with one of: good/",
          "spec.resources.gpus 2 exceeds the operator's policy.maxGPUsPerStage: at most 1 GPU per stage pod"]),
    ],
)
def test_policy_problems_name_the_field_and_what_is_allowed(spec, default, allowed, max_gpus, expected):
    assert policy_problems(spec, default_image=default, allowed_images=allowed, max_gpus_per_stage=max_gpus) == expected


# --------------------------------------------------------------------------- at reconcile


@pytest.mark.parametrize(
    "spec, policy, field",
    [
        ({"image": "evil.example/miner:1"}, {"allowed_images": ALLOWED}, "spec.image"),
        ({}, {"allowed_images": ("registry.example/",)}, "default runtime image"),
        ({"resources": {"gpus": 16}}, {"max_gpus_per_stage": 8}, "spec.resources.gpus"),
    ],
)
def test_a_spec_the_policy_forbids_is_degraded_invalid_spec_and_runs_nothing(spec, policy, field):
    d = decide(body(spec), Observed(), NOW, settings(**policy))
    assert d.create == []
    cond = degraded(d)
    assert cond["status"] == "True" and cond["reason"] == "InvalidSpec" and field in cond["message"]
    assert "policy." in cond["message"]
    assert dump_status(d.status)["phase"] == "Failed"
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "InvalidSpec")]
    # One Event per distinct problem, not one per reconcile.
    again = decide({**body(spec), "status": dump_status(d.status)}, Observed(), NOW, settings(**policy))
    assert again.events == [] and again.create == []


def test_fixing_the_spec_lets_the_evolution_start():
    policy = settings(allowed_images=ALLOWED, max_gpus_per_stage=4)
    bad = decide(body({"image": "evil.example/x:1", "resources": {"gpus": 8}}), Observed(), NOW, policy)
    assert degraded(bad)["reason"] == "InvalidSpec"
    fixed = body({"image": "registry.example/seas/runtime:2", "resources": {"gpus": 4}}, status=dump_status(bad.status), generation=2)
    d = decide(fixed, Observed(), NOW, policy)
    assert [c.name for c in d.create] == ["demo-r0-evaluate"]
    assert degraded(d)["status"] == "False"
    container = d.create[0].body["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/seas/runtime:2"


def test_no_policy_allows_any_image_and_gpu_count():
    d = decide(body({"image": "anything.example/x:1", "resources": {"gpus": 64}}), Observed(), NOW, settings())
    assert [c.name for c in d.create] == ["demo-r0-evaluate"]


def test_operator_stage_pod_defaults_reach_the_children_under_spec_pod():
    defaults = PodTemplateSpec.model_validate({
        "serviceAccountName": "seas-default", "labels": {"kueue.x-k8s.io/queue-name": "shared", "org": "ml"},
        "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    })
    spec = {"pod": {"labels": {"kueue.x-k8s.io/queue-name": "team-a"}, "priorityClassName": "high"}}
    d = decide(body(spec), Observed(), NOW, settings(pod_defaults=defaults))
    job = d.create[0].body
    pod = job["spec"]["template"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"  # the CR wins a key
    assert pod["metadata"]["labels"]["org"] == "ml"  # the operator's other keys stay
    assert pod["spec"]["serviceAccountName"] == "seas-default" and pod["spec"]["priorityClassName"] == "high"
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in pod["spec"]["containers"][0]["env"]


def _launch(spec: SafetyEvolutionSpec, after: StageKey, policy: OperatorSettings):
    ctx = Context(name="demo", namespace="ns", uid="u-1", generation=1, now=NOW, settings=policy)
    return launch_due(spec, {}, done_through(spec, after), Observed(), 0, spec.target.model, ctx)


def test_a_stage_pod_a_trainjob_cannot_carry_is_a_spec_problem_at_its_launch():
    """A priority class has nowhere to go in a TrainJob: the evolution says so (InvalidSpec) instead of dropping it."""
    spec = _spec(pod={"priorityClassName": "high"}, training={"backend": "trainjob"})
    pairs = _launch(spec, StageKey(1, Stage.ATTACK), settings())  # a Job carries it
    assert pairs.create[0].body["spec"]["template"]["spec"]["priorityClassName"] == "high"
    with pytest.raises(SpecProblem, match=r"spec.pod.priorityClassName .*TrainJob"):
        _launch(spec, StageKey(1, Stage.PAIRS), settings())


def test_a_policy_tightened_after_the_spec_was_accepted_stops_the_next_launch():
    spec = _spec(image="old.example/seas:1")
    assert _launch(spec, StageKey(1, Stage.ATTACK), settings()).create
    with pytest.raises(SpecProblem, match=r"spec.image 'old.example/seas:1' is not allowed"):
        _launch(spec, StageKey(1, Stage.ATTACK), settings(allowed_images=ALLOWED))


# --------------------------------------------------------------------------- from the chart's environment


def test_policy_and_stage_pod_come_from_the_environment():
    pod = {"serviceAccountName": "seas-stage", "imagePullSecrets": ["ghcr-pull"], "labels": {"kueue.x-k8s.io/queue-name": "gpu"},
           "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
           "env": [{"name": "HF_ENDPOINT", "value": "https://mirror.internal"}], "envFrom": [{"configMapRef": {"name": "proxy"}}]}
    s = load_settings({"SEAS_STAGE_POD": json.dumps(pod), "SEAS_ALLOWED_IMAGES": json.dumps(list(ALLOWED)), "SEAS_MAX_GPUS_PER_STAGE": "8"})
    assert s.pod_defaults == PodTemplateSpec.model_validate(pod)
    assert s.allowed_images == ALLOWED and s.max_gpus_per_stage == 8
    unset = load_settings({"SEAS_STAGE_POD": "", "SEAS_ALLOWED_IMAGES": "", "SEAS_MAX_GPUS_PER_STAGE": ""})
    assert (unset.pod_defaults, unset.allowed_images, unset.max_gpus_per_stage) == (PodTemplateSpec(), (), None)


@pytest.mark.parametrize(
    "env, needles",
    [
        ({"SEAS_STAGE_POD": "{labels: x}"}, ["SEAS_STAGE_POD", "not JSON"]),
        ({"SEAS_STAGE_POD": json.dumps({"labels": {"seas.dev/stage": "x"}})}, ["SEAS_STAGE_POD", "operator's own"]),
        ({"SEAS_STAGE_POD": json.dumps({"serviceAcountName": "x"})}, ["SEAS_STAGE_POD", "serviceAcountName", "unknown field"]),
        ({"SEAS_ALLOWED_IMAGES": "registry.example/"}, ["SEAS_ALLOWED_IMAGES", "not JSON"]),
        ({"SEAS_ALLOWED_IMAGES": json.dumps([""])}, ["SEAS_ALLOWED_IMAGES", "every image"]),
        ({"SEAS_MAX_GPUS_PER_STAGE": "-1"}, ["SEAS_MAX_GPUS_PER_STAGE"]),
        ({"SEAS_MAX_GPUS_PER_STAGE": "eight"}, ["SEAS_MAX_GPUS_PER_STAGE"]),
    ],
)
def test_bad_policy_or_stage_pod_settings_name_the_variable(env, needles):
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    for needle in needles:
        assert needle in str(info.value)
    assert "\n" not in str(info.value)
