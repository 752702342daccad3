"""The Grafana dashboard (charts/seas-operator/files/dashboard.json)."""

from __future__ import annotations

import json
import re

import pytest

from seas_operator.metrics import ratio_name
from tests.helpers.helm_tools import CHART, OPERATOR_METRICS, dashboard_queries, iter_panels, metric_names, rendered_dashboard

DASHBOARD_FILE = CHART / "files" / "dashboard.json"
GLANCE = "All evolutions at a glance"  # the one panel that shows every evolution, not the selected one


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
        if panel["title"] == GLANCE:
            continue
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


RATES = (  # metric bases: each is exported as <base>_ratio, <base>_low_ratio and <base>_high_ratio
    "seas_direct_asr",
    "seas_adversarial_asr",
    "seas_sampled_asr",
    "seas_contrast_refusal",
    "seas_benign_refusal",
    "seas_redteam_asr",
    "seas_judge_error",
    "seas_qa_accuracy",
)
BOUNDS = ("", "_low", "_high")
PER_ROUND = {
    *(ratio_name(rate, bound) for rate in RATES for bound in BOUNDS),
    *(ratio_name("seas_qa_accuracy_drop", bound) for bound in BOUNDS),
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
        *(ratio_name(base, bound) for base in ("seas_category_asr", "seas_style_asr") for bound in BOUNDS),
        "seas_target_asr_high_latest_ratio",
        "seas_qa_accuracy_drop_high_latest_ratio",
        "seas_safety_regressed",
        "seas_gate_max_target_asr_ratio",
        "seas_gate_max_accuracy_drop_ratio",
        "seas_gate_max_benign_refusal_ratio",
        "seas_latest_round",
        "seas_latest_round_final",
        "seas_promoted_round",
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
            if ratio_name(rate) not in used or panel["type"] == "table":
                continue
            assert {ratio_name(rate, "_low"), ratio_name(rate, "_high")} <= used, f"{panel['title']!r} shows {rate} without its bounds"
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


def _panel(dashboard: dict, title: str) -> dict:
    (panel,) = [p for p in _panels(dashboard) if p["title"] == title]
    return panel


def test_all_evolutions_at_a_glance(dashboard):
    """One table row per evolution, in every namespace, with its latest gated bound, gate, verdicts and conditions, linking to its view."""
    panel = _panel(dashboard, GLANCE)
    assert panel["type"] == "table"
    exprs = [t["expr"] for t in panel["targets"]]
    assert all("by (namespace, evolution)" in e and "$namespace" not in e and "$evolution" not in e for e in exprs), exprs
    assert {"seas_target_asr_high_latest_ratio", "seas_gate_max_target_asr_ratio", "seas_safety_regressed", "seas_promoted_round",
            "seas_latest_round_final", "seas_condition", "seas_current_round"} <= metric_names(exprs)
    assert all(t.get("instant") is True and t.get("format") == "table" for t in panel["targets"])
    links = [prop["value"] for o in panel["fieldConfig"]["overrides"] for prop in o["properties"] if prop["id"] == "links"]
    assert any("var-evolution=${__data.fields.evolution}" in link["url"] and "var-namespace=${__data.fields.namespace}" in link["url"]
               for group in links for link in group)
    assert panel["gridPos"]["y"] <= 1, "the overview of every evolution comes first"


@pytest.mark.parametrize("label", ["category", "style"])
def test_category_and_style_asr_panels(dashboard, label):
    """A heat map (label x round, cells coloured by the ASR) and a table with each group's interval, per breakdown."""
    metric = f"seas_{label}_asr"
    panels = [p for p in _panels(dashboard) if ratio_name(metric) in metric_names(t["expr"] for t in p["targets"])]
    heat = [p for p in panels if any(t["id"] == "groupingToMatrix" for t in p.get("transformations", []))]
    assert len(heat) == 1, [p["title"] for p in panels]
    (matrix,) = [t["options"] for t in heat[0]["transformations"] if t["id"] == "groupingToMatrix"]
    assert (matrix["rowField"], matrix["columnField"]) == (label, "round")
    assert heat[0]["fieldConfig"]["defaults"]["custom"]["cellOptions"]["type"] == "color-background"
    with_bounds = [p for p in panels if {ratio_name(metric, "_low"), ratio_name(metric, "_high")} <= metric_names(t["expr"] for t in p["targets"])]
    assert with_bounds, f"no panel shows the interval of {metric}"
    for panel in panels:
        for target in panel["targets"]:
            assert f"by (round, {label})" in target["expr"]


def test_annotations_mark_round_ends_promotions_and_alerts(dashboard):
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"] if not a.get("builtIn")}
    assert set(annotations) == {"Round ended", "Model promoted", "Alerts firing"}
    for annotation in annotations.values():
        assert annotation["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and annotation["enable"] is True
        assert metric_names([annotation["expr"]]) <= OPERATOR_METRICS
    assert annotations["Round ended"]["expr"].startswith('changes(seas_latest_round{namespace="$namespace", evolution="$evolution"}[')
    assert annotations["Model promoted"]["expr"].startswith('changes(seas_promoted_round{namespace="$namespace", evolution="$evolution"}[')
    alerts = annotations["Alerts firing"]["expr"]
    assert 'ALERTS{alertstate="firing", namespace="$namespace", evolution="$evolution"}' in alerts and "SeasOperatorDown" in alerts
    assert annotations["Alerts firing"]["titleFormat"] == "{{alertname}}"
