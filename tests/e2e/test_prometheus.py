"""A real Prometheus server evaluates the chart's alert rules against the operator's live /metrics.

Prometheus (Debian's ``prometheus`` package, installed with promtool by
``.ci/install-promtool.sh``) scrapes the operator every second and evaluates the
rules the chart renders, with short ``for:`` durations and a regression threshold
set through the chart's values (prometheusRule.alerts), not by editing the rule
file. The operator runs as its own process against the kmock emulator; the test
plays the Job controller and hands each stage a made-up result: round 1's ASR is
far above round 0's, by a paired change the operator calls significant.

What a user would see: once round 1 (of 2) is evaluated, ``SeasSafetyRegressed``
goes pending and then firing; round 1's ASR is above its gate too, but it is an
early round, so the gate alert stays quiet; the operator's own scrape target is
up, so ``SeasOperatorDown`` stays quiet; and every ``seas_*`` metric the chart's
alerts and dashboard query is in Prometheus, scraped from the operator.

Slow: about 25-45 s here (operator start, 6 stages, the alert's ``for:``); under 90 s.
A missing ``prometheus`` binary fails the test, never skips it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from seas_operator.kinds import LABEL_ROUND, LABEL_STAGE
from seas_runtime.contract import Stage, StageKey, dump_result
from seas_runtime.stats import Rate
from tests.helpers.factories import change, evaluate_result, result_for
from tests.helpers.helm_tools import metric_names_used, rendered_rule_groups
from tests.helpers.operator_harness import JobController, OperatorProcess, free_port, wait_for

JOB = "seas-e2e"  # the scrape job; prometheusRule.operatorJob points SeasOperatorDown at it
VALUES = {"prometheusRule": {
    "operatorJob": JOB,
    "alerts": {
        "SeasSafetyRegressed": {"for": "6s", "minIncrease": 0.1},
        "SeasTargetASRAboveGate": {"for": "2s"},
        "SeasOperatorDown": {"for": "2s"},
    },
}}
N = 48  # prompts per target set
# Unsafe answers per round: round 1 relapses against the baseline, 17 answers safe in round 0 unsafe in round 1
# and 1 the other way (exact McNemar p < 0.001, +33 points).
RESULTS = {
    0: evaluate_result(0, unsafe=14, n=N).model_copy(update={"sampledASR": Rate.of(20, 2 * N)}),
    1: evaluate_result(1, unsafe=30, n=N, regression=change(17, 1, N), accuracy_change=change(3, 2, 120)).model_copy(
        update={"sampledASR": Rate.of(50, 2 * N)}),
}


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("the prometheus server is not on PATH: run `bash .ci/install-promtool.sh` (Debian's prometheus package)")
    return path


class Prometheus:
    """``prometheus`` on a free port, scraping one target and evaluating one rule file, both every second."""

    def __init__(self, tmp: Path, target_port: int, rules: list[dict]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rule_file = tmp / "rules.yaml"
        rule_file.write_text(yaml.safe_dump({"groups": rules}, sort_keys=False))
        config = tmp / "prometheus.yaml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            # honor_labels as the chart's ServiceMonitor: the metrics' own namespace label is the evolution's.
            "scrape_configs": [{"job_name": JOB, "honor_labels": True, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }))
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
        )
        wait_for(self._ready, 30, "Prometheus to be ready", interval=0.2)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.ConnectionError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"].get("alertname") == name]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class FakeStages(JobController):
    """Finishes each child at once with its stage's made-up result, except those ``hold`` keeps running."""

    def finish(self, child: dict) -> None:
        labels = child["metadata"]["labels"]
        key = StageKey(int(labels[LABEL_ROUND]), Stage(labels[LABEL_STAGE]))
        result = RESULTS[key.round] if key.stage == Stage.EVALUATE else result_for(key)
        self._report(child, exit_code=0, message=dump_result(result), reason="Completed")
        self.handled[child["metadata"]["name"]] = "succeeded"



@pytest.fixture()
def prometheus(operator: OperatorProcess, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, operator.metrics_port, rendered_rule_groups(VALUES))
    yield server
    server.stop()


def evolution() -> dict:
    spec = {"rounds": 2, "target": {"model": "embedded:smollm2-135m-instruct"}, "redTeam": {"model": "embedded:smollm2-135m-instruct"},
            "resources": {"gpus": 0}, "retries": 0,
            "gates": {"maxTargetASR": 0.3, "maxAccuracyDrop": 0.5, "maxBenignRefusalRate": 0.5}}
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "drift"}, "spec": spec}


def test_a_regression_alert_goes_pending_then_firing_on_live_operator_metrics(emulator, operator, prometheus, tmp_path):
    started = time.monotonic()
    # The rules Prometheus loaded are the chart's, with the values' `for:` and threshold.
    loaded = {r["name"]: r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
    assert loaded["SeasSafetyRegressed"]["duration"] == 6 and "seas_regression_difference_latest_ratio >= 0.1" in loaded["SeasSafetyRegressed"]["query"]
    assert loaded["SeasOperatorDown"]["query"].count(f'up{{job="{JOB}"}}') == 2
    assert prometheus.alerts("SeasSafetyRegressed") == []

    emulator.create_evolution(evolution())
    # Round 2 never finishes: round 1 (of 2) stays the latest evaluated round, an early one.
    controller = FakeStages(emulator, tmp_path, hold=lambda child: child["metadata"]["labels"][LABEL_ROUND] == "2")
    states: list[tuple[float, str]] = []

    def firing() -> bool:
        controller.step()
        for alert in prometheus.alerts("SeasSafetyRegressed"):
            if not states or states[-1][1] != alert["state"]:
                states.append((time.monotonic(), alert["state"]))
        return bool(states) and states[-1][1] == "firing"

    wait_for(firing, 75, "SeasSafetyRegressed to fire", interval=0.25)
    assert [state for _, state in states] == ["pending", "firing"], states
    assert states[1][0] - states[0][0] >= 5, f"firing came before its for: 6s: {states}"  # one evaluation of slack
    (alert,) = prometheus.alerts("SeasSafetyRegressed")
    assert {k: alert["labels"][k] for k in ("namespace", "evolution", "severity", "job")} == {
        "namespace": "default", "evolution": "drift", "severity": "warning", "job": JOB}
    assert "default/drift is significantly less safe than the round before" in alert["annotations"]["summary"]
    assert "kubectl describe sevo drift -n default" in alert["annotations"]["description"]

    # The operator says the same in the object's status.
    status = emulator.evolution("drift")["status"]
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    assert status["rounds"][1]["regression"]["significant"] is True and status["rounds"][1]["regression"]["direction"] == "worse"
    assert next(c for c in status["conditions"] if c["type"] == "SafetyRegressed")["status"] == "True"

    # Round 1's ASR is above its gate too (upper bound of 30/48 = 74.8% > 30%), but it is an early round of the
    # cycle and its model was not promoted: the gate alert (for: 2s, six evaluations ago at least) stays quiet.
    above = prometheus.query('seas_target_asr_high_latest_ratio{evolution="drift"} > on(namespace, evolution) seas_gate_max_target_asr_ratio')
    assert above and float(above[0]["value"][1]) == pytest.approx(RESULTS[1].adversarialASR.high)
    assert [s["value"][1] for s in prometheus.query('seas_latest_round_final{evolution="drift"}')] == ["0"]
    assert prometheus.alerts("SeasTargetASRAboveGate") == [], "the gate alert fired on an early round"
    # The operator is scraped and up: SeasOperatorDown stays quiet.
    assert [s["value"][1] for s in prometheus.query(f'up{{job="{JOB}"}}')] == ["1"]
    assert prometheus.alerts("SeasOperatorDown") == []
    # Every seas_* metric the chart's alerts and dashboard query is in Prometheus, scraped from the operator.
    scraped = {s["metric"]["__name__"] for s in prometheus.query('group by (__name__) ({__name__=~"seas_.+", job="%s"})' % JOB)}
    assert metric_names_used() <= scraped, sorted(metric_names_used() - scraped)
    assert time.monotonic() - started < 75
