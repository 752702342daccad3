"""The operator under faults, over real HTTP: what a user sees when pods cannot start, results are forged, the API fails.

The operator runs as its own process against the kmock emulator, here and there
through a proxy that injects HTTP errors or never answers. No stage runs: the
tests play the Job controller by writing pods and Job status themselves.

Not proven here (the emulator cannot): garbage collection and namespace
deletion cascading to children, and deleting a Namespace object at all (checked
by asserting that nothing carries a finalizer, which is what would block them), the Job controller's
``podFailurePolicy`` (checked in the builders' tests), RBAC enforcement.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import kubernetes
import pytest

from seas_operator.builders import Owner, build_stage_object
from seas_operator.kinds import PYTORCHJOB
from seas_operator.kube import KIND_RECHECK_SECONDS, Kube
from seas_operator.stage_configs import build_stage_config
from seas_operator.troubles import ApiProblem
from seas_runtime.contract import StageKey, dump_result
from tests.helpers.factories import done_through, evaluate_result, make_spec
from tests.helpers.fault_proxy import Fault, FaultProxy
from tests.helpers.operator_harness import KINDS, SEVO, Emulator, OperatorProcess, wait_for

JOBS = KINDS["Job"].format(ns="default")


def evolution(name: str, **spec) -> dict:
    body = {"rounds": 1, "target": {"model": "embedded:smollm2-135m-instruct"}, "redTeam": {"model": "embedded:smollm2-135m-instruct"},
            "resources": {"gpus": 0}, "retries": 1, **spec}
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name}, "spec": body}


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def stage(obj: dict, label: str = "r0/evaluate") -> dict:
    return ((obj.get("status") or {}).get("stages") or {}).get(label) or {}


def events_of(emulator: Emulator, name: str, reason: str = "") -> list[dict]:
    return [e for e in emulator.events() if e.get("involvedObject", {}).get("name") == name and (not reason or e.get("reason") == reason)]


def job(emulator: Emulator, name: str) -> dict:
    return wait_for(lambda: next((c for c in emulator.children() if c["metadata"]["name"] == name), None), 30, f"Job {name}")


def post_pod(emulator: Emulator, child: dict, status: dict, owner_uid: str | None = None, name: str = "") -> None:
    """A pod of ``child`` as the Job controller would create it (owned by the child), or forged (another owner)."""
    labels = dict(child["spec"]["template"]["metadata"]["labels"])
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": child["metadata"]["name"], "uid": owner_uid or child["metadata"]["uid"], "controller": True}
    emulator.post("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name or f"{child['metadata']['name']}-pod", "namespace": "default", "labels": labels,
                     "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ownerReferences": [owner]},
        "status": status,
    })


def finish_job(emulator: Emulator, name: str, ok: bool = True) -> None:
    condition_ = {"type": "Complete" if ok else "Failed", "status": "True", "reason": "Completed" if ok else "BackoffLimitExceeded"}
    emulator.patch(f"{JOBS}/{name}/status", {"status": {"conditions": [condition_], "succeeded" if ok else "failed": 1}})


def evaluate_message() -> str:
    return dump_result(evaluate_result(0))



@pytest.fixture()
def proxy(emulator):
    proxy = FaultProxy(emulator.url)
    proxy.start()
    yield proxy
    proxy.stop()


def kubeconfig_for(url: str, tmp: Path) -> Path:
    path = tmp / "proxy.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
        "clusters": [{"name": "proxy", "cluster": {"server": url}}],
        "users": [{"name": "proxy", "user": {"token": "test"}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy", "namespace": "default"}}],
    }))
    return path


def test_deleting_evolutions_and_their_namespace_completes_with_no_operator_running(emulator, tmp_path):
    op = OperatorProcess(emulator, tmp_path)
    legacy = evolution("legacy", suspend=True)
    legacy["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]  # as an older release left it
    emulator.create_evolution(legacy)
    op.start()
    emulator.create_evolution(evolution("gone"))
    emulator.create_evolution(evolution("gone-too"), namespace="team-a")
    wait_for(lambda: stage(emulator.evolution("gone")).get("state") == "running"
             and stage(emulator.evolution("gone-too", "team-a")).get("state") == "running", 60, "both evolutions to start a stage")
    wait_for(lambda: not emulator.evolution("legacy")["metadata"].get("finalizers"), 30, "the old kopf finalizer to be dropped")
    op.stop()  # as after `helm uninstall`

    # Nothing the operator touched carries a finalizer: deleting the CR, its namespace or the CRD cannot wait on it.
    objects = [emulator.evolution("gone"), emulator.evolution("gone-too", "team-a"), *emulator.children(), *emulator.children("team-a")]
    assert len(objects) == 4  # the suspended legacy evolution started nothing
    assert all(not o["metadata"].get("finalizers") for o in objects), [o["metadata"].get("finalizers") for o in objects]
    assert all(o["metadata"]["ownerReferences"][0]["controller"] for o in objects[2:])  # children go with their owner (GC)
    for namespace, name in (("default", "gone"), ("team-a", "gone-too")):
        emulator.http.delete(emulator.url + f"{SEVO.format(ns=namespace)}/{name}", timeout=10).raise_for_status()
        assert emulator.http.get(emulator.url + f"{SEVO.format(ns=namespace)}/{name}", timeout=10).status_code == 404
    # kmock serves no Namespace objects, so deleting team-a itself is not played here: a real namespace deletion
    # waits only on finalizers, and no object in it has one (asserted above).


STUCK = {
    "pull": {"phase": "Pending", "containerStatuses": [{"name": "stage", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "ghcr.io/seas-dev/seas-runtime:typo"'}}}]},
    "secret": {"phase": "Pending", "containerStatuses": [{"name": "stage", "state": {"waiting": {
        "reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}}}]},
    "sched": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                 "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]},
}


def test_pods_that_cannot_start_surface_at_once_and_fail_the_attempt_after_the_startup_timeout(emulator, operator):
    for name in STUCK:
        emulator.create_evolution(evolution(name, timeouts={"startup": 30}, retries=0))
    posted = {}
    for name, status in STUCK.items():
        post_pod(emulator, job(emulator, f"{name}-r0-evaluate"), status)
        posted[name] = time.monotonic()
    reasons = {"pull": "ImagePullBackOff", "secret": "CreateContainerConfigError", "sched": "Unschedulable"}
    for name, reason in reasons.items():
        wait_for(lambda: stage(emulator.evolution(name)).get("reason", "").startswith(f"Pending: {reason}"), 10, f"{name}: {reason} in status")
        assert time.monotonic() - posted[name] < 10  # within a reconcile or two (interval 1 s here), not at the Job deadline
        (event,) = events_of(emulator, name, "StagePending")
        assert reason in event["message"] and "fails after 30s" in event["message"]
    for name, reason in reasons.items():
        obj = wait_for(lambda: stage(emulator.evolution(name)).get("state") == "failed" and emulator.evolution(name), 60, f"{name} to fail")
        assert reason in stage(obj)["reason"] and "not started after 30s" in stage(obj)["reason"]
        assert condition(obj, "Degraded")["status"] == "True"
    # The stuck Jobs are ended: they may hold GPUs or quota.
    wait_for(lambda: not emulator.children(), 30, "the stuck Jobs to be deleted")


def test_a_forged_pod_never_passes_for_a_result(emulator, operator):
    emulator.create_evolution(evolution("forge", retries=0))
    child = job(emulator, "forge-r0-evaluate")
    # Someone who may create pods labels one as the stage's, with a flawless result, and the Job completes without
    # a pod of its own (as if its pod were deleted).
    running = {"phase": "Succeeded", "containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 0, "message": evaluate_message()}}}]}
    post_pod(emulator, child, running, owner_uid="someone-else", name="forged")
    finish_job(emulator, "forge-r0-evaluate")
    obj = wait_for(lambda: stage(emulator.evolution("forge")).get("state") == "failed" and emulator.evolution("forge"), 30, "the stage to fail")
    assert "MalformedResult" in stage(obj)["reason"] and "no result" in stage(obj)["reason"]
    assert not obj["status"].get("rounds") and obj["status"]["promotedModel"] == "embedded:smollm2-135m-instruct"  # nothing promoted


def test_a_job_left_by_an_earlier_object_of_the_same_name_is_not_adopted(emulator, operator):
    # A completed Job with a result, owned by an earlier "again" that was deleted (the GC has not removed it yet).
    spec = make_spec(rounds=1)
    key = StageKey(0, "evaluate")
    config = build_stage_config("again", spec, key, {}, "/artifacts/default/again/c0")
    old = build_stage_object(Owner(name="again", namespace="default", uid="uid-of-the-old-one"), spec, key, config, name="again-r0-evaluate",
                             image="img", pvc="pvc", backend="job")
    created = emulator.post(JOBS, old.body)
    post_pod(emulator, created, {"phase": "Succeeded", "containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 0, "message": evaluate_message()}}}]})
    finish_job(emulator, "again-r0-evaluate")

    emulator.create_evolution(evolution("again"), uid="uid-of-the-new-one")
    (event,) = wait_for(lambda: events_of(emulator, "again", "ChildNameTaken"), 30, "a ChildNameTaken event")
    assert "not controlled by this SafetyEvolution" in event["message"]
    obj = emulator.evolution("again")
    assert stage(obj).get("state") != "succeeded" and not obj["status"].get("rounds")
    # Once the garbage collector removes the old Job, the evolution creates its own.
    emulator.http.delete(emulator.url + f"{JOBS}/again-r0-evaluate", timeout=10).raise_for_status()
    new = wait_for(lambda: next((c for c in emulator.children() if c["metadata"]["ownerReferences"][0]["uid"].startswith("uid-of-the-new-one")), None),
                   30, "the evolution's own Job")
    assert new["metadata"]["name"] == "again-r0-evaluate"


def test_api_errors_are_retried_reported_and_never_called_invalid_spec(emulator, proxy, tmp_path):
    op = OperatorProcess(emulator, tmp_path, extra_env={"KUBECONFIG": str(kubeconfig_for(proxy.url, tmp_path)), "SEAS_API_TIMEOUT_SECONDS": "2",
                                                        "SEAS_API_UNAVAILABLE_SECONDS": "4"})
    proxy.set(Fault("POST", r"/jobs$", status=503), Fault("PATCH", r"/safetyevolutions/blocked/status", block=True))
    op.start()
    try:
        emulator.create_evolution(evolution("outage"))
        emulator.create_evolution(evolution("blocked"))
        # A 503 on create: one Warning Event at once, Degraded APIUnavailable only once it has lasted.
        wait_for(lambda: events_of(emulator, "outage", "APIUnavailable"), 20, "an APIUnavailable event")
        obj = wait_for(lambda: condition(emulator.evolution("outage"), "Degraded").get("reason") == "APIUnavailable" and emulator.evolution("outage"),
                       30, "Degraded APIUnavailable after the outage lasted")
        assert "HTTP 503" in condition(obj, "Degraded")["message"] and "Audit-Id" not in json.dumps(obj)
        assert not stage(obj)  # nothing recorded as started while nothing was created
        assert len(events_of(emulator, "outage", "APIUnavailable")) == 1  # rate-limited, not one per retry
        # Meanwhile every status PATCH of "blocked" hung until its timeout: it held up neither "outage" nor the operator.
        assert op.alive() and not stage(emulator.evolution("blocked"))
        proxy.clear()
        wait_for(lambda: stage(emulator.evolution("outage")).get("state") == "running", 30, "the Job once the API is back")
        wait_for(lambda: condition(emulator.evolution("outage"), "Degraded").get("status") == "False", 30, "Degraded to clear")
        wait_for(lambda: stage(emulator.evolution("blocked")).get("state") == "running", 30, "the blocked status to be written")
        assert not [e for e in emulator.events() if e.get("reason") == "InvalidSpec"]
        # A 503 on listing children and a timeout on reading the object: retried, the operator stays up.
        proxy.set(Fault("GET", r"/jobs\?", status=503, times=3), Fault("GET", r"/safetyevolutions/outage$", block=True, times=2))
        time.sleep(8)
        assert op.alive() and proxy.hits[0] == 3 and proxy.hits[1] == 2
        assert condition(emulator.evolution("outage"), "Degraded").get("status") == "False"
        assert not [e for e in emulator.events() if e.get("reason") in ("InvalidSpec", "ReconcileError")]
    finally:
        op.stop()


def test_a_steady_state_makes_no_writes(emulator, proxy, tmp_path):
    op = OperatorProcess(emulator, tmp_path, extra_env={"KUBECONFIG": str(kubeconfig_for(proxy.url, tmp_path))})
    op.start()
    try:
        emulator.create_evolution(evolution("calm"))
        wait_for(lambda: stage(emulator.evolution("calm")).get("state") == "running", 30, "a running stage")
        time.sleep(2)
        before = len(proxy.requests)
        time.sleep(6)  # six reconciles at interval 1 s
        since = proxy.requests[before:]
        assert [r for r in since if r[0] in ("POST", "PATCH", "PUT", "DELETE") and "/leases/" not in r[1]] == []
        assert any(r[0] == "GET" and r[1].endswith("/safetyevolutions/calm") for r in since)  # it did reconcile
    finally:
        op.stop()


def test_kubeflow_installed_after_the_operator_started_is_found(emulator, proxy):
    configuration = kubernetes.client.Configuration()
    configuration.host = proxy.url
    clock = [0.0]
    kube = Kube(kubernetes.client.ApiClient(configuration), timeout=2, clock=lambda: clock[0])
    emulator.create_evolution(evolution("kf"), uid="uid-kf")
    uid = emulator.evolution("kf")["metadata"]["uid"]
    proxy.set(Fault("*", r"/apis/kubeflow.org/", status=404))
    assert kube.list_children("default", "kf", uid) == {}
    spec = make_spec(rounds=1)
    key = StageKey(1, "train-target")
    obj = build_stage_object(Owner(name="kf", namespace="default", uid=uid), spec, key, build_stage_config("kf", spec, key, done_through(spec), "/a"),
                             name="kf-r1-train-target", image="img", pvc="pvc", backend="pytorchjob")
    with pytest.raises(ApiProblem) as missing:
        kube.create(obj, "default", uid)
    assert missing.value.reason == "KindNotInstalled" and "spec.training.backend" in missing.value.message
    proxy.clear()  # Kubeflow is installed
    requests_before = len(proxy.requests)
    kube.list_children("default", "kf", uid)
    assert not any("pytorchjobs" in path for _, path in proxy.requests[requests_before:])  # not asked again at once ...
    clock[0] += KIND_RECHECK_SECONDS
    assert kube.create(obj, "default", uid) is True
    assert set(kube.list_children("default", "kf", uid)) == {"kf-r1-train-target"}  # ... but a few minutes later
    assert kube.list_children("default", "kf", uid)["kf-r1-train-target"]["kind"] == PYTORCHJOB.kind


def test_a_client_that_never_answers_times_out(emulator, proxy):
    configuration = kubernetes.client.Configuration()
    configuration.host = proxy.url
    kube = Kube(kubernetes.client.ApiClient(configuration), timeout=1)
    proxy.set(Fault("*", r"/safetyevolutions", block=True))
    started = time.monotonic()
    with pytest.raises(ApiProblem) as blocked:
        kube.get_evolution("default", "anything")
    assert blocked.value.transient and blocked.value.reason == "APIUnavailable"
    assert time.monotonic() - started < 10  # (urllib3 retries a read timeout a few times at most)
    proxy.set(Fault("PATCH", r"/status", status=503))
    with pytest.raises(ApiProblem) as unavailable:
        kube.patch_status("default", "anything", {"phase": "Running"})
    assert unavailable.value.transient and "HTTP 503" in str(unavailable.value)
