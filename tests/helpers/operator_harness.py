"""End-to-end harness: a kmock API server, the operator as a real process, and a test job controller.

Everything crosses real HTTP. The job controller does what the kubelet and the
Job/PyTorchJob controllers would: for each child the operator created it runs
the container's command on this machine (the stage config from its env, the
artifact volume mapped to a local folder), then writes a Pod with the
container's termination message and the child's status conditions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from . import ROOT

KINDS = {
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "PyTorchJob": "/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs",
    "TrainJob": "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs",
}
SEVO = "/apis/seas.dev/v1alpha1/namespaces/{ns}/safetyevolutions"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
# Leader election timings for operators under test (production: 15 s lease, 10 s renew deadline, 2 s
# retry). The renew deadline is generous because on a loaded machine the emulator can stall for
# seconds, and a leader that cannot renew exits (nothing restarts it here); a SIGKILLed operator's
# Lease still expires soon enough for a restarted one to take over within about 22 s.
LEADER_ENV = {"SEAS_LEADER_LEASE_SECONDS": "20", "SEAS_LEADER_RENEW_SECONDS": "15", "SEAS_LEADER_RETRY_SECONDS": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Emulator:
    """kmock serving the Kubernetes API in a child process."""

    def __init__(self, tmp: Path) -> None:
        url_file = tmp / "kmock.url"
        self.stats_file = url_file.with_suffix(".stats")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.kube_emulator", str(url_file)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=open(tmp / "kmock.log", "w"))
        self.url = wait_for(lambda: url_file.exists() and url_file.read_text(), 30, "the emulator to start")
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "kmock", "user": {"token": "test"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"}}],
        }))
        self.http = requests.Session()

    def get(self, path: str, **params: Any) -> dict:
        response = self.http.get(self.url + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> dict:
        response = self.http.post(self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict) -> dict:
        response = self.http.patch(self.url + path, json=body, headers={"Content-Type": "application/merge-patch+json"}, timeout=30)
        response.raise_for_status()
        return response.json()

    def create_evolution(self, body: dict, namespace: str = "default", uid: str = "uid-1") -> None:
        body = json.loads(json.dumps(body))
        meta = body.setdefault("metadata", {})
        # kmock assigns none of these; a real API server would.
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", f"{uid}-{meta.get('name')}")
        meta.setdefault("generation", 1)
        meta.setdefault("resourceVersion", "1")
        self.post(SEVO.format(ns=namespace), body)

    def evolution(self, name: str, namespace: str = "default") -> dict:
        return self.get(SEVO.format(ns=namespace) + f"/{name}")

    def children(self, namespace: str = "default") -> list[dict]:
        items = []
        for kind, path in KINDS.items():
            for item in self.get(path.format(ns=namespace)).get("items", []):
                item.setdefault("kind", kind)
                items.append(item)
        return items

    def events(self, namespace: str = "default") -> list[dict]:
        return self.get(f"/api/v1/namespaces/{namespace}/events").get("items", [])

    def lease(self, name: str = "seas-operator", namespace: str = "default") -> Optional[dict]:
        """The leader-election Lease; None while no operator has created it."""
        response = self.http.get(self.url + LEASES.format(ns=namespace) + f"/{name}", timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def lease_holder(self, name: str = "seas-operator", namespace: str = "default") -> str:
        """``spec.holderIdentity`` of the Lease ("" when absent or released)."""
        return ((self.lease(name, namespace) or {}).get("spec") or {}).get("holderIdentity") or ""

    def stats(self) -> dict:
        """The emulator's counters (requests, creates and 409 conflicts per resource), as of at most 0.5 s ago."""
        for _ in range(20):
            try:
                return json.loads(self.stats_file.read_text())
            except (OSError, ValueError):  # not written yet, or caught mid-write
                time.sleep(0.1)
        raise AssertionError("the emulator writes no stats")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class OperatorProcess:
    """``seas operator`` against the emulator; can be killed and restarted.

    ``name`` names its log files (``<name>-<start>.log``) and is its ``POD_NAME``, so
    several operators can share one folder and the Lease says which one leads. ``start``
    returns once ``/metrics`` answers, which a standby does too (with no metrics).
    """

    def __init__(self, emulator: Emulator, tmp: Path, extra_env: Optional[dict] = None, name: str = "operator") -> None:
        self.emulator, self.tmp, self.name = emulator, tmp, name
        self.metrics_port = free_port()
        self.env = {**os.environ, "KUBECONFIG": str(emulator.kubeconfig), "SEAS_RECONCILE_INTERVAL": "1", "SEAS_RETRY_BASE_SECONDS": "1",
                    "POD_NAME": name, "POD_NAMESPACE": "default", **LEADER_ENV, **(extra_env or {})}
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.tmp / f"{self.name}-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seas_operator.cli", "operator", "--all-namespaces", "--metrics-port", str(self.metrics_port), "--health-port", "0"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
        )
        wait_for(self._metrics_up, 60, "the operator's /metrics endpoint")

    def _metrics_up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).ok
        except requests.ConnectionError:
            return False

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def leads(self) -> bool:
        """Whether this process holds the leader-election Lease now (identity ``<POD_NAME>_<random>``)."""
        return self.alive() and self.emulator.lease_holder().startswith(f"{self.env['POD_NAME']}_")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.tmp.glob(f"{self.name}-*.log")))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class JobController:
    """Plays the Job and PyTorchJob controllers by running each child's container locally."""

    emulator: Emulator
    tmp: Path
    namespace: str = "default"
    fail: dict[str, int] = field(default_factory=dict)  # child-name prefix -> failures to inject before running it
    handled: dict[str, str] = field(default_factory=dict)  # child name -> outcome
    runs: list[str] = field(default_factory=list)
    hold: Optional[Callable[[dict], bool]] = None  # return True to leave a child running for now

    def pending(self) -> list[dict]:
        return [c for c in self.emulator.children(self.namespace) if c["metadata"]["name"] not in self.handled]

    def step(self) -> int:
        """Finish every child that is waiting; returns how many were handled."""
        count = 0
        for child in self.pending():
            if self.hold and self.hold(child):
                continue
            self.finish(child)
            count += 1
        return count

    def _container(self, child: dict) -> dict:
        if child["kind"] == "Job":
            return child["spec"]["template"]["spec"]["containers"][0]
        if child["kind"] == "PyTorchJob":
            return child["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
        raise AssertionError(f"the harness does not run {child['kind']}")

    def finish(self, child: dict) -> None:
        name = child["metadata"]["name"]
        prefix = next((p for p in self.fail if name.startswith(p) and self.fail[p] > 0), None)
        if prefix is not None:
            self.fail[prefix] -= 1
            self._report(child, exit_code=1, message="simulated node failure", reason="Error")
            self.handled[name] = "failed"
            return
        container = self._container(child)
        env = {e["name"]: e["value"].replace("$$", "$") for e in container.get("env", []) if "value" in e}  # as the kubelet expands
        command = list(container["command"]) + list(container.get("args", []))
        if command[0] == "torchrun":
            # One pod, one process here (no GPUs): run the stage without the launcher, as its only rank would.
            assert "--nproc-per-node=1" in command and "--no-python" in command, command
            command = command[command.index("--no-python") + 1:]
        assert command[0] == "seas-runtime", command
        term = self.tmp / f"{name}.termination-log"
        command = [sys.executable, "-m", "seas_runtime.cli", *[str(term) if a == "/dev/termination-log" else a for a in command[1:]]]
        proc = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
        (self.tmp / f"{name}.log").write_text(proc.stderr[-20000:])
        self.runs.append(name)
        message = term.read_text() if term.exists() else proc.stderr[-2000:]
        self._report(child, exit_code=proc.returncode, message=message, reason="Completed" if proc.returncode == 0 else "Error")
        self.handled[name] = "succeeded" if proc.returncode == 0 else "failed"

    def _report(self, child: dict, exit_code: int, message: str, reason: str) -> None:
        name, kind = child["metadata"]["name"], child["kind"]
        template = child["spec"]["template"] if kind == "Job" else child["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
        labels = dict(template["metadata"]["labels"])
        labels.update({"job-name": name} if kind == "Job" else {"training.kubeflow.org/job-name": name, "training.kubeflow.org/replica-type": "master"})
        container = self._container(child)["name"]
        self.emulator.post(f"/api/v1/namespaces/{self.namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-pod", "namespace": self.namespace, "labels": labels, "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         # The Job (or training) controller owns the pods it creates; only such pods are trusted.
                         "ownerReferences": [{"apiVersion": child["apiVersion"], "kind": kind, "name": name, "uid": child["metadata"]["uid"], "controller": True}]},
            "status": {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": [
                {"name": container, "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message}}}]},
        })
        ok = exit_code == 0
        if kind == "Job":
            status = {"conditions": [{"type": "Complete" if ok else "Failed", "status": "True", "reason": "Completed" if ok else "BackoffLimitExceeded", "message": "" if ok else "Job has reached the specified backoff limit"}],
                      "succeeded" if ok else "failed": 1}
        else:
            status = {"conditions": [{"type": "Succeeded" if ok else "Failed", "status": "True", "reason": "PyTorchJobSucceeded" if ok else "PyTorchJobFailed"}]}
        path = KINDS[kind].format(ns=self.namespace) + f"/{name}/status"
        self.emulator.patch(path, {"status": status})
