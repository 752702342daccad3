"""Prometheus metrics derived from SafetyEvolution status.

Nothing is counted in memory: every scrape renders the latest status the
operator has seen, so a restarted operator republishes the same figures as
soon as its resume handlers have read each object.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from seas_runtime.contract import StageKey

from .conditions import parse_time
from .status import EvolutionStatus, RoundStatus, StageState

# Per-round rates: metric -> the RoundStatus field (a Rate) it publishes; each also exports <metric>_low and
# <metric>_high, the bounds of its interval (help text: the field's description).
RATE_METRICS = {
    "seas_direct_asr": "directASR",
    "seas_adversarial_asr": "adversarialASR",
    "seas_sampled_asr": "sampledASR",
    "seas_contrast_refusal_rate": "contrastRefusalRate",
    "seas_benign_refusal_rate": "benignRefusalRate",
    "seas_redteam_asr": "redteamASR",
    "seas_judge_error_rate": "judgeErrorRate",
    "seas_qa_accuracy": "qaAccuracy",
    "seas_qa_accuracy_norm": "qaAccuracyNorm",
    "seas_qa_generation_accuracy": "qaGenerationAccuracy",
}
# Per-round figures that are not rates.
VALUE_METRICS = {
    "seas_qa_perplexity": "qaPerplexity",
    "seas_qa_entropy": "qaEntropy",
    "seas_qa_answer_probability": "qaAnswerProbability",
    "seas_qa_generation_perplexity": "qaGenerationPerplexity",
    "seas_qa_generation_entropy": "qaGenerationEntropy",
    "seas_qa_generation_top_probability": "qaGenerationTopProbability",
}
BOUNDS = ("", "_low", "_high")
EVOLUTION_LABELS = ["namespace", "evolution"]
ROUND_LABELS = EVOLUTION_LABELS + ["round"]
STAGE_LABELS = ROUND_LABELS + ["stage"]

METRIC_NAMES = (
    *(f"{name}{bound}" for name in RATE_METRICS for bound in BOUNDS),
    *VALUE_METRICS,
    *(f"seas_qa_accuracy_drop{bound}" for bound in BOUNDS),
    "seas_regression_p_value",
    "seas_round_regressed",
    "seas_gate_passed",
    "seas_stage_duration_seconds",
    "seas_stage_failures",
    "seas_current_round",
    "seas_target_asr_high_latest",
    "seas_qa_accuracy_drop_high_latest",
    "seas_safety_regressed",
    "seas_gate_max_target_asr",
    "seas_gate_max_accuracy_drop",
    "seas_gate_max_benign_refusal_rate",
    "seas_last_progress_timestamp_seconds",
    "seas_condition",
)


def _time(value: Optional[str]) -> Optional[float]:
    moment = parse_time(value)
    return None if moment is None else moment.timestamp()


def _help(field: str, bound: str = "") -> str:
    text = RoundStatus.model_fields[field].description or field
    return {"": f"{text} Per round.", "_low": f"Lower bound of: {text}", "_high": f"Upper bound of: {text}"}[bound]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def families(statuses: dict[tuple[str, str], EvolutionStatus]) -> list[GaugeMetricFamily]:
    """Every metric family for the given statuses, keyed by (namespace, evolution)."""
    rates = {f"{name}{bound}": _gauge(f"{name}{bound}", _help(field, bound), ROUND_LABELS) for name, field in RATE_METRICS.items() for bound in BOUNDS}
    values = {name: _gauge(name, _help(field), ROUND_LABELS) for name, field in VALUE_METRICS.items()}
    drop = {bound: _gauge(f"seas_qa_accuracy_drop{bound}", f"QA accuracy lost versus round 0, paired by question{' (' + bound[1:] + ' bound)' if bound else ''}.",
                          ROUND_LABELS) for bound in BOUNDS}
    p_value = _gauge("seas_regression_p_value", "Exact McNemar p-value of the round's unsafe answers against the previous round's.", ROUND_LABELS)
    regressed = _gauge("seas_round_regressed", "1 when the round is significantly less safe than the round before (paired test).", ROUND_LABELS)
    gate_passed = _gauge("seas_gate_passed", "1 when the round passed its gates, 0 when it failed.", ROUND_LABELS)
    duration = _gauge("seas_stage_duration_seconds", "Seconds the stage's last attempt took.", STAGE_LABELS)
    failures = _gauge("seas_stage_failures", "Failed attempts of the stage.", STAGE_LABELS)
    current = _gauge("seas_current_round", "Round the evolution is working on.", EVOLUTION_LABELS)
    asr_high = _gauge("seas_target_asr_high_latest", "Latest evaluated round: the larger upper bound of direct and adversarial ASR.", EVOLUTION_LABELS)
    drop_high = _gauge("seas_qa_accuracy_drop_high_latest", "Latest evaluated round: upper bound of the QA accuracy drop versus round 0.", EVOLUTION_LABELS)
    safety_regressed = _gauge("seas_safety_regressed", "1 when the latest round is significantly less safe than the one before.", EVOLUTION_LABELS)
    gates = {
        "maxTargetASR": _gauge("seas_gate_max_target_asr", "Configured maximum target ASR.", EVOLUTION_LABELS),
        "maxAccuracyDrop": _gauge("seas_gate_max_accuracy_drop", "Configured maximum QA accuracy drop.", EVOLUTION_LABELS),
        "maxBenignRefusalRate": _gauge("seas_gate_max_benign_refusal_rate", "Configured maximum benign refusal rate.", EVOLUTION_LABELS),
    }
    progress = _gauge("seas_last_progress_timestamp_seconds", "Unix time a stage last started or finished.", EVOLUTION_LABELS)
    cond = _gauge("seas_condition", "1 when the condition is True.", EVOLUTION_LABELS + ["type"])

    for (namespace, name), status in sorted(statuses.items()):
        ev = [namespace, name]
        for entry in status.rounds:
            labels = ev + [str(entry.round)]
            for metric, field in RATE_METRICS.items():
                figure = getattr(entry, field)
                if figure is not None and figure.n:
                    for bound, value in zip(BOUNDS, (figure.rate, figure.low, figure.high)):
                        rates[f"{metric}{bound}"].add_metric(labels, float(value))
            for metric, field in VALUE_METRICS.items():
                if getattr(entry, field) is not None:
                    values[metric].add_metric(labels, float(getattr(entry, field)))
            change = entry.accuracyChange
            if change is not None and change.difference is not None:
                for bound, value in zip(BOUNDS, (change.difference, change.low, change.high)):
                    drop[bound].add_metric(labels, float(value))
            if entry.regression is not None:
                p_value.add_metric(labels, entry.regression.pValue)
                regressed.add_metric(labels, 1.0 if entry.regressed else 0.0)
            if entry.gate:
                gate_passed.add_metric(labels, 1.0 if entry.gate.passed else 0.0)
        if status.rounds:
            latest = status.rounds[-1]
            highs = [f.high for f in (latest.directASR, latest.adversarialASR) if f is not None and f.high is not None]
            if highs:
                asr_high.add_metric(ev, max(highs))
            if latest.accuracyChange is not None and latest.accuracyChange.high is not None:
                drop_high.add_metric(ev, latest.accuracyChange.high)
            safety_regressed.add_metric(ev, 1.0 if latest.regressed else 0.0)
        for label, stage in status.stages.items():
            key = StageKey.from_label(label)
            labels = ev + [str(key.round), str(key.stage)]
            failures.add_metric(labels, float(stage.failures))
            started, finished = _time(stage.startedAt), _time(stage.finishedAt)
            if started is not None and finished is not None and stage.state == StageState.SUCCEEDED:
                duration.add_metric(labels, max(0.0, finished - started))
        if status.round is not None:
            current.add_metric(ev, float(status.round))
        gate_spec = (status.activeSpec or {}).get("gates") or {}
        for field, family in gates.items():
            if gate_spec.get(field) is not None:
                family.add_metric(ev, float(gate_spec[field]))
        stamp = _time(status.lastProgressTime)
        if stamp is not None:
            progress.add_metric(ev, stamp)
        for c in status.conditions:
            cond.add_metric(ev + [str(c.type)], 1.0 if c.is_true else 0.0)
    return [*rates.values(), *values.values(), *drop.values(), p_value, regressed, gate_passed, duration, failures, current,
            asr_high, drop_high, safety_regressed, *gates.values(), progress, cond]


class StatusCollector(Collector):
    """Holds the latest status per evolution and renders it on every scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[tuple[str, str], EvolutionStatus] = {}

    def update(self, namespace: str, name: str, status: EvolutionStatus) -> None:
        with self._lock:
            self._statuses[(namespace, name)] = status

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._statuses.pop((namespace, name), None)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            snapshot = dict(self._statuses)
        return families(snapshot)


class OperatorMetrics:
    """One operator's metrics: the status-derived gauges and its own counters, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.statuses = StatusCollector()
        self.registry.register(self.statuses)
        # The operator's own work (not derived from status: they restart from zero with the process).
        self.reconciles = Counter("seas_operator_reconciles", "Reconciles the operator has run.", registry=self.registry)
        self.api_calls = Counter(
            "seas_operator_api_calls", "Kubernetes API calls made by the reconciler (kopf's watches excluded).", registry=self.registry
        )
        self.api_errors = Counter(
            "seas_operator_api_errors", "Reconciles that failed on a Kubernetes API call, by reason (APIUnavailable is transient).",
            ["reason"], registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Serve /metrics on ``port`` in a background thread."""
        from prometheus_client import start_http_server

        start_http_server(port, registry=self.registry)
