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

# Per-round gauges: metric name -> the RoundStatus field it publishes (its help text is the field's description).
ROUND_METRICS = {
    "seas_target_asr": "targetASR",
    "seas_redteam_asr": "redteamASR",
    "seas_benign_refusal_rate": "benignRefusalRate",
    "seas_qa_accuracy": "qaAccuracy",
    "seas_qa_perplexity": "qaPerplexity",
    "seas_qa_entropy": "qaEntropy",
    "seas_qa_answer_probability": "qaAnswerProbability",
    "seas_qa_accuracy_drop": "accuracyDrop",
}
EVOLUTION_LABELS = ["namespace", "evolution"]
ROUND_LABELS = EVOLUTION_LABELS + ["round"]
STAGE_LABELS = ROUND_LABELS + ["stage"]

METRIC_NAMES = (
    *ROUND_METRICS,
    "seas_gate_passed",
    "seas_stage_duration_seconds",
    "seas_stage_failures",
    "seas_current_round",
    "seas_target_asr_latest",
    "seas_target_asr_previous",
    "seas_qa_accuracy_drop_latest",
    "seas_gate_max_target_asr",
    "seas_gate_max_accuracy_drop",
    "seas_gate_max_benign_refusal_rate",
    "seas_last_progress_timestamp_seconds",
    "seas_condition",
)


def _time(value: Optional[str]) -> Optional[float]:
    moment = parse_time(value)
    return None if moment is None else moment.timestamp()


def _help(field: str) -> str:
    return f"{RoundStatus.model_fields[field].description} Per round."


def families(statuses: dict[tuple[str, str], EvolutionStatus]) -> list[GaugeMetricFamily]:
    """Every metric family for the given statuses, keyed by (namespace, evolution)."""
    per_round = {name: GaugeMetricFamily(name, _help(field), labels=ROUND_LABELS) for name, field in ROUND_METRICS.items()}
    gate_passed = GaugeMetricFamily("seas_gate_passed", "1 when the round passed its gates, 0 when it failed.", labels=ROUND_LABELS)
    duration = GaugeMetricFamily("seas_stage_duration_seconds", "Seconds the stage's last attempt took.", labels=STAGE_LABELS)
    failures = GaugeMetricFamily("seas_stage_failures", "Failed attempts of the stage.", labels=STAGE_LABELS)
    current = GaugeMetricFamily("seas_current_round", "Round the evolution is working on.", labels=EVOLUTION_LABELS)
    latest = GaugeMetricFamily("seas_target_asr_latest", "Target ASR of the latest evaluated round.", labels=EVOLUTION_LABELS)
    previous = GaugeMetricFamily("seas_target_asr_previous", "Target ASR of the round before the latest.", labels=EVOLUTION_LABELS)
    drop_latest = GaugeMetricFamily("seas_qa_accuracy_drop_latest", "QA accuracy drop of the latest round versus round 0.", labels=EVOLUTION_LABELS)
    gates = {
        "maxTargetASR": GaugeMetricFamily("seas_gate_max_target_asr", "Configured maximum target ASR.", labels=EVOLUTION_LABELS),
        "maxAccuracyDrop": GaugeMetricFamily("seas_gate_max_accuracy_drop", "Configured maximum QA accuracy drop.", labels=EVOLUTION_LABELS),
        "maxBenignRefusalRate": GaugeMetricFamily("seas_gate_max_benign_refusal_rate", "Configured maximum benign refusal rate.", labels=EVOLUTION_LABELS),
    }
    progress = GaugeMetricFamily("seas_last_progress_timestamp_seconds", "Unix time a stage last started or finished.", labels=EVOLUTION_LABELS)
    cond = GaugeMetricFamily("seas_condition", "1 when the condition is True.", labels=EVOLUTION_LABELS + ["type"])

    for (namespace, name), status in sorted(statuses.items()):
        ev = [namespace, name]
        for entry in status.rounds:
            labels = ev + [str(entry.round)]
            for metric, field in ROUND_METRICS.items():
                value = getattr(entry, field)
                if value is not None:
                    per_round[metric].add_metric(labels, float(value))
            if entry.gate:
                gate_passed.add_metric(labels, 1.0 if entry.gate.passed else 0.0)
        evaluated = [r for r in status.rounds if r.targetASR is not None]
        if evaluated:
            latest.add_metric(ev, float(evaluated[-1].targetASR))
            drop_latest.add_metric(ev, float(evaluated[-1].accuracyDrop or 0.0))
        if len(evaluated) >= 2:
            previous.add_metric(ev, float(evaluated[-2].targetASR))
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
    return [*per_round.values(), gate_passed, duration, failures, current, latest, previous, drop_latest, *gates.values(), progress, cond]


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
            "seas_operator_api_calls", "Kubernetes API calls made by the reconciler (kopf's watches, patches and events excluded).", registry=self.registry
        )

    def serve(self, port: int) -> None:
        """Serve /metrics on ``port`` in a background thread."""
        from prometheus_client import start_http_server

        start_http_server(port, registry=self.registry)
