"""Prometheus metrics derived from status: every rate with its interval bounds, paired changes and the latest round's flags."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from seas_operator.metrics import METRIC_NAMES, RATE_METRICS, OperatorMetrics, families
from seas_operator.status import EvolutionStatus, GateResult, RoundStatus
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
    assert (value(found, "seas_direct_asr", round="1"), value(found, "seas_direct_asr_low", round="1"), value(found, "seas_direct_asr_high", round="1")) \
        == (0.125, 0.0586, 0.247)
    assert value(found, "seas_qa_accuracy_drop", round="1") == change(6, 1, 120).difference
    assert value(found, "seas_qa_accuracy_drop_high", round="1") == change(6, 1, 120).high
    assert value(found, "seas_round_regressed", round="1") == 1.0 and value(found, "seas_regression_p_value", round="1") < 0.05
    assert value(found, "seas_safety_regressed") == 1.0
    assert value(found, "seas_target_asr_high_latest") == 0.247  # the larger upper bound of direct (24.7%) and adversarial (16.9%)
    assert value(found, "seas_gate_max_target_asr") == 0.2 and value(found, "seas_gate_passed", round="1") == 0.0
    assert ("seas_direct_asr", (("evolution", "demo"), ("namespace", "ns"), ("round", "0"))) in found
    assert not any(name == "seas_adversarial_asr" and ("round", "0") in labels for name, labels in found)  # not measured: no sample


def test_an_unmeasured_rate_and_an_unpaired_round_export_nothing_made_up():
    found = samples({("ns", "demo"): status(RoundStatus(round=0, adversarialASR=Rate.of(0, 0)))})
    assert not any(name.startswith(("seas_adversarial_asr", "seas_round_regressed", "seas_qa_accuracy_drop")) for name, _ in found)
    assert value(found, "seas_safety_regressed") == 0.0


def test_the_exported_families_are_the_documented_list():
    assert sorted(f.name for f in families({})) == sorted(METRIC_NAMES)
    assert all(f"{name}_low" in METRIC_NAMES and f"{name}_high" in METRIC_NAMES for name in RATE_METRICS)


def test_the_registry_renders_parseable_text():
    metrics = OperatorMetrics()
    metrics.statuses.update("ns", "demo", status(RoundStatus(round=0, directASR=Rate.of(1, 4))))
    metrics.api_calls.inc()
    names = {f.name for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert {"seas_direct_asr", "seas_direct_asr_low", "seas_operator_api_calls"} <= names
    metrics.statuses.forget("ns", "demo")
    assert "seas_direct_asr{" not in generate_latest(metrics.registry).decode()
