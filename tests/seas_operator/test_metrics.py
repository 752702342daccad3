"""Prometheus metrics derived from status: every rate with its interval bounds, paired changes and the latest round's flags."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import pytest

from seas_operator import __version__
from seas_operator.handlers import OperatorState, reconcile
from seas_operator.metrics import MAX_BREAKDOWN_VALUES, METRIC_NAMES, RATE_METRICS, OperatorMetrics, families
from seas_operator.settings import load_settings
from seas_operator.status import EvolutionStatus, GateResult, RoundStatus
from seas_operator.troubles import ApiProblem
from seas_runtime.stats import Rate
from tests.helpers.factories import change


def status(*rounds: RoundStatus) -> EvolutionStatus:
    return EvolutionStatus(rounds=list(rounds), round=len(rounds), activeSpec={"gates": {"maxTargetASR": 0.2}})


def samples(statuses: dict) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in families(statuses):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels) -> float:
    labels = {"namespace": "ns", "evolution": "demo", **labels}
    return found[(name, tuple(sorted(labels.items())))]


def test_every_rate_exports_its_value_and_bounds():
    r1 = RoundStatus(round=1, directASR=Rate.of(6, 48), adversarialASR=Rate.of(10, 104), qaAccuracy=Rate.of(60, 120),
                     accuracyChange=change(6, 1, 120), regression=change(9, 1), gate=GateResult(passed=False))
    found = samples({("ns", "demo"): status(RoundStatus(round=0, directASR=Rate.of(20, 48)), r1)})
    assert (value(found, "seas_direct_asr_ratio", round="1"), value(found, "seas_direct_asr_low_ratio", round="1"),
            value(found, "seas_direct_asr_high_ratio", round="1")) \
        == (0.125, 0.0586, 0.247)
    assert value(found, "seas_qa_accuracy_drop_ratio", round="1") == change(6, 1, 120).difference
    assert value(found, "seas_qa_accuracy_drop_high_ratio", round="1") == change(6, 1, 120).high
    assert value(found, "seas_round_regressed", round="1") == 1.0 and value(found, "seas_regression_p_value", round="1") < 0.05
    assert value(found, "seas_safety_regressed") == 1.0
    assert value(found, "seas_target_asr_high_latest_ratio") == 0.247  # the larger upper bound of direct (24.7%) and adversarial (16.9%)
    assert value(found, "seas_gate_max_target_asr_ratio") == 0.2 and value(found, "seas_gate_passed", round="1") == 0.0
    assert ("seas_direct_asr_ratio", (("evolution", "demo"), ("namespace", "ns"), ("round", "0"))) in found
    assert not any(name == "seas_adversarial_asr_ratio" and ("round", "0") in labels for name, labels in found)  # not measured: no sample


def test_an_unmeasured_rate_and_an_unpaired_round_export_nothing_made_up():
    found = samples({("ns", "demo"): status(RoundStatus(round=0, adversarialASR=Rate.of(0, 0)))})
    assert not any(name.startswith(("seas_adversarial_asr", "seas_round_regressed", "seas_qa_accuracy_drop")) for name, _ in found)
    assert value(found, "seas_safety_regressed") == 0.0


def test_the_exported_families_are_the_documented_list():
    assert sorted(f.name for f in families({})) == sorted(METRIC_NAMES)
    assert all(f"{name}_low_ratio" in METRIC_NAMES and f"{name}_high_ratio" in METRIC_NAMES for name in RATE_METRICS)
    # Every share between 0 and 1 is named _ratio (Prometheus' unit suffix), and nothing keeps the pre-_ratio name.
    assert not any(name.endswith(("_asr", "_asr_low", "_asr_high", "_rate", "_rate_low", "_rate_high", "_accuracy", "_latest"))
                   for name in METRIC_NAMES)


def test_the_registry_renders_parseable_text():
    metrics = OperatorMetrics()
    metrics.statuses.update("ns", "demo", status(RoundStatus(round=0, directASR=Rate.of(1, 4))))
    metrics.api_calls.inc()
    names = {f.name for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert {"seas_direct_asr_ratio", "seas_direct_asr_low_ratio", "seas_operator_api_calls"} <= names
    metrics.statuses.forget("ns", "demo")
    assert "seas_direct_asr_ratio{" not in generate_latest(metrics.registry).decode()


def test_category_and_style_asr_are_exported_per_round_with_bounds():
    r0 = RoundStatus(round=0, byCategory={"fraud": Rate.of(3, 12), "hate": Rate.of(0, 12)}, byStyle={"role_play": Rate.of(3, 24)})
    r1 = RoundStatus(round=1, byCategory={"fraud": Rate.of(1, 12)}, byStyle={"role_play": Rate.of(1, 24)})
    found = samples({("ns", "demo"): status(r0, r1)})
    assert value(found, "seas_category_asr_ratio", round="0", category="fraud") == 0.25
    assert value(found, "seas_category_asr_high_ratio", round="1", category="fraud") == Rate.of(1, 12).high
    assert value(found, "seas_category_asr_low_ratio", round="0", category="hate") == 0.0
    assert value(found, "seas_style_asr_ratio", round="1", style="role_play") == Rate.of(1, 24).rate


def test_breakdown_labels_are_capped_and_the_rest_summed_as_other():
    """A user's prompt set with 30 categories exports at most MAX_BREAKDOWN_VALUES label values, the same set in every round."""
    many = {f"c{i:02d}": Rate.of(1, 10 + i) for i in range(30)}
    found = samples({("ns", "demo"): status(RoundStatus(round=0, byCategory=many), RoundStatus(round=1, byCategory=many))})
    per_round = {r: {dict(labels)["category"] for name, labels in found if name == "seas_category_asr_ratio" and dict(labels)["round"] == r}
                 for r in ("0", "1")}
    assert per_round["0"] == per_round["1"] and len(per_round["0"]) == MAX_BREAKDOWN_VALUES
    assert "other" in per_round["0"] and "c29" in per_round["0"] and "c00" not in per_round["0"]  # the largest groups keep their names
    folded = [f"c{i:02d}" for i in range(30) if f"c{i:02d}" not in per_round["0"]]
    other = Rate.of(len(folded), sum(many[c].n for c in folded))
    assert value(found, "seas_category_asr_ratio", round="0", category="other") == other.rate
    assert value(found, "seas_category_asr_high_ratio", round="0", category="other") == other.high


def test_final_and_promoted_rounds_are_flagged():
    passed, failed = GateResult(passed=True), GateResult(passed=False)
    early = status(RoundStatus(round=0), RoundStatus(round=1, gate=failed, targetModel="t1"))
    early.activeSpec = {"rounds": 3}
    found = samples({("ns", "demo"): early})
    assert value(found, "seas_latest_round") == 1.0 and value(found, "seas_latest_round_final") == 0.0
    assert value(found, "seas_promoted_round") == 0.0 and value(found, "seas_latest_round_promoted") == 0.0

    promoted = status(RoundStatus(round=0), RoundStatus(round=1, gate=failed, targetModel="t1"), RoundStatus(round=2, gate=passed, targetModel="t2"))
    promoted.activeSpec = {"rounds": 3}
    found = samples({("ns", "demo"): promoted})
    assert value(found, "seas_latest_round_final") == 0.0 and value(found, "seas_latest_round_promoted") == 1.0
    assert value(found, "seas_promoted_round") == 2.0

    last = status(RoundStatus(round=0), RoundStatus(round=1, gate=passed, targetModel="t1"), RoundStatus(round=2, gate=failed, targetModel="t2"))
    last.activeSpec = {"rounds": 2}
    found = samples({("ns", "demo"): last})
    assert value(found, "seas_latest_round_final") == 1.0 and value(found, "seas_latest_round_promoted") == 0.0
    assert value(found, "seas_promoted_round") == 1.0

    done = status(RoundStatus(round=0))
    done.activeSpec, done.stage = {"rounds": 2}, "Done"  # a cycle that ends early (e.g. evaluate-only) is final too
    assert value(samples({("ns", "demo"): done}), "seas_latest_round_final") == 1.0
    recheck = status(RoundStatus(round=0))
    recheck.activeSpec = {"mode": "evaluate"}  # a scheduled re-check: its one evaluation is the cycle's outcome
    assert value(samples({("ns", "demo"): recheck}), "seas_latest_round_final") == 1.0


def test_latest_regression_difference_follows_the_paired_change():
    found = samples({("ns", "demo"): status(RoundStatus(round=0), RoundStatus(round=1, regression=change(9, 1)))})
    assert value(found, "seas_regression_difference_latest_ratio") == change(9, 1).difference > 0


def test_build_info_names_the_version():
    found = samples({})
    (labels,) = [dict(labels) for name, labels in found if name == "seas_build_info"]
    assert labels["version"] == __version__ and labels["python_version"].count(".") == 2
    assert found[("seas_build_info", tuple(sorted(labels.items())))] == 1.0


class _FailingKube:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def get_evolution(self, namespace: str, name: str) -> dict:
        raise self.error


def _exported(metrics: OperatorMetrics) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(metrics.registry).decode()) for s in f.samples}


def test_reconcile_duration_and_errors_by_reason():
    state = OperatorState(settings=load_settings({}))
    state.kube = _FailingKube(ApiProblem("APIUnavailable", "the API server answered 503", transient=True))
    assert reconcile(state, "ns", "demo") is None
    state.kube = _FailingKube(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        reconcile(state, "ns", "demo")
    found = _exported(state.metrics)
    assert found[("seas_operator_reconcile_errors_total", (("reason", "APIUnavailable"),))] == 1.0
    assert found[("seas_operator_reconcile_errors_total", (("reason", "Unexpected"),))] == 1.0
    assert found[("seas_operator_reconcile_duration_seconds_count", ())] == 2.0
    assert found[("seas_operator_reconciles_total", ())] == 2.0
