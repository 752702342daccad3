"""Alert rules: promtool (Debian's `prometheus` package; .ci/install-promtool.sh)
checks and unit-tests the rule file the chart embeds, and the rules as rendered
into the PrometheusRule. promtool missing is a failure, never a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.helm_tools import CHART, OPERATOR_METRICS, ROOT, lint, metric_names, metric_names_used, promtool, rendered_rule_groups, rule_exprs

RULES = CHART / "files" / "alerts.yaml"
UNIT_TESTS = CHART / "tests" / "alerts_test.yaml"
DOCS = ROOT / "docs" / "operations.md"

REQUIRED_ALERTS = {
    "SeasTargetASRAboveGate",
    "SeasSafetyRegressed",
    "SeasCapabilityRegressed",
    "SeasEvolutionDegraded",
    "SeasNoProgress",
    "SeasOperatorDown",
}


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([promtool(), *args], capture_output=True, text=True)
    return proc


def _alerts(groups: list[dict]) -> dict[str, dict]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _file_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def _write_rendered(tmp_path: Path, groups: list[dict]) -> Path:
    rules = tmp_path / "rendered-alerts.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return rules


def _unit_tests_for(tmp_path: Path, rules: Path) -> Path:
    """The chart's promtool unit tests, pointed at another rule file."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = [str(rules)]
    path = tmp_path / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    return path


def test_promtool_is_installed():
    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert "promtool" in proc.stdout + proc.stderr


def test_rule_file_passes_promtool_check():
    proc = _run("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_rule_file_passes_promtool_unit_tests():
    proc = _run("test", "rules", str(UNIT_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_rendered_rules_pass_promtool(tmp_path):
    rules = _write_rendered(tmp_path, rendered_rule_groups())
    check = _run("check", "rules", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr
    unit = _run("test", "rules", str(_unit_tests_for(tmp_path, rules)))
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_rendered_rules_equal_the_file_with_default_values():
    assert rendered_rule_groups() == _file_groups()


def test_values_adjust_the_rendered_rules(tmp_path):
    groups = rendered_rule_groups(
        {
            "prometheusRule": {
                "noProgressSeconds": 3600,
                "runbookBaseUrl": "https://wiki.example/seas/runbook/",
                "alertLabels": {"team": "ml-platform", "severity": "page"},
            }
        }
    )
    alerts = _alerts(groups)
    assert "seas_last_progress_timestamp_seconds > 3600" in alerts["SeasNoProgress"]["expr"]
    assert 'up{job="seas-operator-metrics"}' in alerts["SeasOperatorDown"]["expr"], "the ServiceMonitor's job: the metrics Service's name"
    for name, alert in alerts.items():
        assert alert["annotations"]["runbook_url"] == f"https://wiki.example/seas/runbook#{name.lower()}"
        assert alert["labels"]["team"] == "ml-platform"
        assert alert["labels"]["severity"] in {"warning", "critical"}, "an alert's own severity wins over alertLabels"
    check = _run("check", "rules", str(_write_rendered(tmp_path, groups)))
    assert check.returncode == 0, check.stdout + check.stderr


def test_each_alert_is_configured_in_values(tmp_path):
    """Per alert: its `for`, its threshold (a fixed one instead of each evolution's gate) and whether it is on; and the operator's job."""
    groups = rendered_rule_groups({"prometheusRule": {
        "operatorJob": "kubernetes-pods/seas",
        "alerts": {
            "SeasSafetyRegressed": {"for": "5s", "minIncrease": 0.05},
            "SeasTargetASRAboveGate": {"maxTargetASR": 0.3, "for": "10m"},
            "SeasCapabilityRegressed": {"maxAccuracyDrop": 0.1},
            "SeasNoProgress": {"enabled": False},
        },
    }})
    alerts = _alerts(groups)
    assert "SeasNoProgress" not in alerts and set(alerts) == REQUIRED_ALERTS - {"SeasNoProgress"}
    assert (alerts["SeasSafetyRegressed"]["for"], alerts["SeasTargetASRAboveGate"]["for"], alerts["SeasOperatorDown"]["for"]) == ("5s", "10m", "5m")
    assert " ".join(alerts["SeasSafetyRegressed"]["expr"].split()).endswith("seas_regression_difference_latest_ratio >= 0.05")
    assert " ".join(alerts["SeasTargetASRAboveGate"]["expr"].split()).startswith("seas_target_asr_high_latest_ratio > 0.3 and on(namespace, evolution)")
    assert "maxTargetASR, 0.3" in alerts["SeasTargetASRAboveGate"]["annotations"]["description"]
    assert alerts["SeasCapabilityRegressed"]["expr"].strip() == "seas_qa_accuracy_drop_high_latest_ratio > 0.1"
    assert 'up{job="kubernetes-pods/seas"}' in alerts["SeasOperatorDown"]["expr"]
    rules = _write_rendered(tmp_path, groups)
    check = _run("check", "rules", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr
    # The thresholds act on evaluation: a significant rise of 3 points stays quiet under minIncrease 0.05, one of
    # 8 points fires; an ASR bound of 0.25 passes a 0.3 threshold although it is above the evolution's 0.2 gate.
    series = [
        ('seas_safety_regressed{namespace="ml",evolution="small"}', "1x20"), ('seas_regression_difference_latest_ratio{namespace="ml",evolution="small"}', "0.03x20"),
        ('seas_safety_regressed{namespace="ml",evolution="large"}', "1x20"), ('seas_regression_difference_latest_ratio{namespace="ml",evolution="large"}', "0.08x20"),
        ('seas_target_asr_high_latest_ratio{namespace="ml",evolution="large"}', "0.25x20"), ('seas_gate_max_target_asr_ratio{namespace="ml",evolution="large"}', "0.2x20"),
        ('seas_latest_round_final{namespace="ml",evolution="large"}', "1x20"),
    ]
    unit = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": name, "values": values} for name, values in series],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "SeasSafetyRegressed", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "ml", "evolution": "large"},
                 "exp_annotations": {key: text.replace("{{ $labels.namespace }}", "ml").replace("{{ $labels.evolution }}", "large")
                                     for key, text in alerts["SeasSafetyRegressed"]["annotations"].items()}}]},
            {"eval_time": "15m", "alertname": "SeasTargetASRAboveGate", "exp_alerts": []},
        ],
    }]}
    path = tmp_path / "thresholds_test.yaml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    proc = _run("test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("alerts", [
    {"SeasTargetASRAboveGate": {"maxTargetASR": 1.5}},  # a share above 1
    {"SeasSafetyRegressed": {"minIncrease": -0.1}},
    {"SeasSafetyRegressed": {"for": "soon"}},  # not a Prometheus duration
    {"SeasTargetASRAboveGat": {"for": "1m"}},  # a misspelt alert would silently change nothing
])
def test_values_schema_rejects_bad_alert_settings(alerts):
    proc = lint({"prometheusRule": {"enabled": True, "alerts": alerts}})
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_no_progress_threshold_default_matches_values():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    threshold = values["prometheusRule"]["noProgressSeconds"]
    expr = _alerts(_file_groups())["SeasNoProgress"]["expr"]
    assert re.search(rf"seas_last_progress_timestamp_seconds > {threshold}\b", expr)


def test_required_alerts_and_their_annotations():
    alerts = _alerts(_file_groups())
    assert REQUIRED_ALERTS <= set(alerts)
    docs = DOCS.read_text()
    anchors = {_github_anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", docs, re.M)}
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}, name
        annotations = alert["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        url = annotations["runbook_url"]
        assert url.startswith("https://github.com/seas-dev/seas-operator/blob/main/docs/operations.md#"), url
        anchor = url.split("#", 1)[1]
        assert anchor == name.lower()
        assert anchor in anchors, f"docs/operations.md has no runbook section for {name} (#{anchor})"


def _github_anchor(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_alert_expressions_match_the_contract():
    """Gates compare the upper bound of an interval (as the operator's gates do); a regression is the paired test's verdict."""
    exprs = {name: " ".join(rule["expr"].split()) for name, rule in _alerts(_file_groups()).items()}
    assert exprs["SeasTargetASRAboveGate"] == (
        "seas_target_asr_high_latest_ratio > on(namespace, evolution) seas_gate_max_target_asr_ratio"
        " and on(namespace, evolution) (seas_latest_round_final == 1 or seas_latest_round_promoted == 1)"
    )
    assert exprs["SeasSafetyRegressed"] == (
        "seas_safety_regressed == 1 and on(namespace, evolution) seas_regression_difference_latest_ratio >= 0"
    )
    assert exprs["SeasCapabilityRegressed"] == (
        "seas_qa_accuracy_drop_high_latest_ratio > on(namespace, evolution) seas_gate_max_accuracy_drop_ratio"
    )
    assert exprs["SeasOperatorDown"] == 'absent(up{job="seas-operator-metrics"}) or max by (job) (up{job="seas-operator-metrics"}) == 0'
    assert exprs["SeasEvolutionDegraded"] == 'seas_condition{type="Degraded"} == 1'
    assert 'seas_condition{type="Progressing"} == 1' in exprs["SeasNoProgress"]
    assert "time() - seas_last_progress_timestamp_seconds" in exprs["SeasNoProgress"]


def test_safety_annotations_explain_intervals_and_the_paired_test():
    alerts = _alerts(_file_groups())
    for name in ("SeasTargetASRAboveGate", "SeasCapabilityRegressed"):
        text = " ".join(alerts[name]["annotations"]["description"].split())
        assert "upper bound of the confidence interval" in text and "spec.evaluation.confidence" in text, name
    text = " ".join(alerts["SeasSafetyRegressed"]["annotations"]["description"].split())
    assert "significantly less safe" in text and "paired test" in text and "McNemar" in text


def test_every_alert_has_firing_and_quiet_unit_tests():
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = set(_alerts(_file_groups()))
    assert alerts <= firing, f"no firing case for {alerts - firing}"
    assert alerts <= quiet, f"no quiet case for {alerts - quiet}"


MUTATIONS = {
    # Flipped regression verdict: fires on every quiet evolution, never on the regressed one.
    "regression verdict": ("SeasSafetyRegressed", "seas_safety_regressed == 1\n", "seas_safety_regressed == 0\n"),
    # The rise threshold turned around: the regressed evolution's rise no longer counts.
    "regression threshold": ("SeasSafetyRegressed", "seas_regression_difference_latest_ratio >= 0", "seas_regression_difference_latest_ratio < 0"),
    # An upper bound exactly at the gate passes it.
    "gate comparison": (
        "SeasTargetASRAboveGate",
        "seas_target_asr_high_latest_ratio > on(namespace, evolution) seas_gate_max_target_asr_ratio",
        "seas_target_asr_high_latest_ratio >= on(namespace, evolution) seas_gate_max_target_asr_ratio",
    ),
    # Without the last-round-or-promoted clause the gate alert fires on early rounds.
    "gate on early rounds": (
        "SeasTargetASRAboveGate",
        "\n          and on(namespace, evolution) (seas_latest_round_final == 1 or seas_latest_round_promoted == 1)",
        "",
    ),
    # Flipped comparison: fires on the evolutions within their gate, not on the forgetting one.
    "capability comparison": (
        "SeasCapabilityRegressed",
        "seas_qa_accuracy_drop_high_latest_ratio > on(namespace, evolution) seas_gate_max_accuracy_drop_ratio",
        "seas_qa_accuracy_drop_high_latest_ratio < on(namespace, evolution) seas_gate_max_accuracy_drop_ratio",
    ),
    # One replica down is not the operator down: a standby still answers.
    "operator down": ("SeasOperatorDown", 'max by (job) (up{job="seas-operator-metrics"}) == 0', 'min by (job) (up{job="seas-operator-metrics"}) == 0'),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unit_tests_catch_a_broken_rule(tmp_path, mutation):
    """Mutation check: break one alert's expression and the unit tests fail on that alert."""
    alert, original, mutated = MUTATIONS[mutation]
    assert RULES.read_text().count(original) == 1, original
    text = RULES.read_text().replace(original, mutated)
    broken = tmp_path / "alerts.yaml"
    broken.write_text(text)
    proc = _run("test", "rules", str(_unit_tests_for(tmp_path, broken)))
    assert proc.returncode != 0
    assert alert in proc.stdout + proc.stderr


def test_alerts_query_only_operator_metrics():
    used = metric_names(rule_exprs(_file_groups()))
    assert used, "no seas_* metric found in the rules"
    assert used <= OPERATOR_METRICS, f"unknown metrics: {sorted(used - OPERATOR_METRICS)}"


def test_metric_names_used_covers_alerts_and_dashboard():
    used = metric_names_used()
    assert used <= OPERATOR_METRICS, f"unknown metrics: {sorted(used - OPERATOR_METRICS)}"
    # The alerts' metrics are in, and so are the dashboard's per-round and per-stage metrics.
    assert {
        "seas_target_asr_high_latest_ratio", "seas_gate_max_target_asr_ratio", "seas_latest_round_final", "seas_latest_round_promoted",
        "seas_safety_regressed", "seas_regression_difference_latest_ratio", "seas_qa_accuracy_drop_high_latest_ratio",
        "seas_gate_max_accuracy_drop_ratio", "seas_condition", "seas_last_progress_timestamp_seconds",
    } <= used
    assert {
        "seas_direct_asr_ratio", "seas_direct_asr_low_ratio", "seas_direct_asr_high_ratio", "seas_adversarial_asr_ratio",
        "seas_adversarial_asr_high_ratio", "seas_redteam_asr_ratio", "seas_stage_duration_seconds", "seas_stage_failures",
        "seas_category_asr_ratio", "seas_style_asr_ratio", "seas_latest_round", "seas_promoted_round",
    } <= used


def test_install_script_is_idempotent_when_promtool_exists():
    assert shutil.which("promtool") and shutil.which("prometheus"), "the script installs both (tests/e2e/test_prometheus.py runs the server)"
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "install-promtool.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already installed" in proc.stdout
