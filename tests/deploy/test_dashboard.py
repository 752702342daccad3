"""The Grafana dashboard (charts/seas-operator/files/dashboard.json)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers.helm_tools import CHART, OPERATOR_METRICS, dashboard_queries, iter_panels, metric_names, rendered_dashboard

DASHBOARD_FILE = CHART / "files" / "dashboard.json"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in iter_panels(dashboard) if p.get("type") != "row"]


def _variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_dashboard_parses_and_is_identified(dashboard):
    assert dashboard["title"] == "SEAS Operator"
    assert dashboard["uid"] == "seas-operator"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"


def test_rendered_configmap_holds_the_same_dashboard(dashboard):
    assert rendered_dashboard() == dashboard


def test_variables(dashboard):
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "evolution"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query.startswith("label_values(") and query.rstrip(")").endswith(name)
        assert var["definition"] == query
    assert "$namespace" in variables["evolution"]["query"]["query"], "evolutions are listed per namespace"


def test_every_panel_has_a_query(dashboard):
    panels = _panels(dashboard)
    assert len(panels) >= 12
    for panel in panels:
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r} target {target.get('refId')} is empty"
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"panel {panel['title']!r} repeats a refId"


def test_every_query_is_scoped_to_the_selected_evolution(dashboard):
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            for metric in metric_names([expr]):
                for selector in re.findall(rf"{metric}\{{([^}}]*)\}}", expr) or [""]:
                    assert 'namespace="$namespace"' in selector and 'evolution="$evolution"' in selector, (
                        f"panel {panel['title']!r}: {metric} is not filtered by $namespace/$evolution"
                    )


def test_panel_ids_unique_and_laid_out(dashboard):
    ids = [p["id"] for p in iter_panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in iter_panels(dashboard):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
    # No two panels overlap.
    cells = set()
    for panel in iter_panels(dashboard):
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another at {(x, y)}"
                cells.add((x, y))


RATES = (
    "seas_direct_asr",
    "seas_adversarial_asr",
    "seas_sampled_asr",
    "seas_contrast_refusal_rate",
    "seas_benign_refusal_rate",
    "seas_redteam_asr",
    "seas_judge_error_rate",
    "seas_qa_accuracy",
)
PER_ROUND = {
    *(f"{rate}{bound}" for rate in RATES for bound in ("", "_low", "_high")),
    *(f"seas_qa_accuracy_drop{bound}" for bound in ("", "_low", "_high")),
    "seas_qa_perplexity",
    "seas_qa_entropy",
    "seas_qa_answer_probability",
    "seas_regression_p_value",
    "seas_round_regressed",
    "seas_gate_passed",
}


def test_dashboard_covers_the_issue(dashboard):
    """Every rate per round with its interval (direct, adversarial and sampled ASR, contrast and benign refusal,
    red-team ASR, judge errors, QA accuracy), the paired accuracy drop with its bounds, the paired regression test,
    the latest round's gated upper bounds and regression verdict, knowledge drift, stages, gates, conditions."""
    used = metric_names(dashboard_queries(dashboard))
    required = PER_ROUND | {
        "seas_target_asr_high_latest",
        "seas_qa_accuracy_drop_high_latest",
        "seas_safety_regressed",
        "seas_gate_max_target_asr",
        "seas_gate_max_accuracy_drop",
        "seas_gate_max_benign_refusal_rate",
        "seas_current_round",
        "seas_last_progress_timestamp_seconds",
        "seas_stage_duration_seconds",
        "seas_stage_failures",
        "seas_condition",
    }
    assert required <= used, f"missing from the dashboard: {sorted(required - used)}"
    assert used <= OPERATOR_METRICS, f"unknown metrics: {sorted(used - OPERATOR_METRICS)}"


def test_every_rate_is_drawn_with_its_interval(dashboard):
    """A panel that plots a rate per round also plots its low and high bound, the band filled between them."""
    for panel in _panels(dashboard):
        used = metric_names(t["expr"] for t in panel["targets"])
        for rate in (*RATES, "seas_qa_accuracy_drop"):
            if rate not in used or panel["type"] == "table":
                continue
            assert {f"{rate}_low", f"{rate}_high"} <= used, f"{panel['title']!r} shows {rate} without its bounds"
            fills = [
                prop["value"]
                for override in panel["fieldConfig"]["overrides"]
                for prop in override["properties"]
                if prop["id"] == "custom.fillBelowTo"
            ]
            assert fills, f"{panel['title']!r} draws no band between the bounds"
            assert panel["options"]["xField"] == "round"


def test_per_round_panels_group_by_round(dashboard):
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            if metric_names([target["expr"]]) & PER_ROUND:
                assert "by (round)" in target["expr"], f"{panel['title']!r}: per-round figure not grouped by round"
                assert target.get("instant") is True and target.get("format") == "table"
