"""Prometheus metrics derived from SafetyEvolution status, and the operator's own counters.

Nothing status-derived is counted in memory: every scrape renders the latest
status the operator has seen, so a restarted operator republishes the same
figures as soon as its resume handlers have read each object.

Names follow Prometheus conventions: a share between 0 and 1 (an ASR, a refusal
or error share, an accuracy, a gate on one of those) ends in ``_ratio``, with
its interval bounds as ``<base>_low_ratio`` and ``<base>_high_ratio``; counters
end in ``_total``; times in ``_seconds``. Probabilities and p-values keep their
names (they are not shares of counted items).
"""

from __future__ import annotations

import platform
import threading
from typing import Iterable, Optional

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from seas_runtime.contract import StageKey
from seas_runtime.stats import Rate

from . import __version__
from .conditions import parse_time
from .status import EvolutionStatus, RoundStatus, StageState

# Per-round rates: metric base -> the RoundStatus field (a Rate) it publishes. Each is exported as <base>_ratio with
# <base>_low_ratio and <base>_high_ratio, the bounds of its interval (help text: the field's description).
RATE_METRICS = {
    "seas_direct_asr": "directASR",
    "seas_adversarial_asr": "adversarialASR",
    "seas_sampled_asr": "sampledASR",
    "seas_contrast_refusal": "contrastRefusalRate",
    "seas_benign_refusal": "benignRefusalRate",
    "seas_redteam_asr": "redteamASR",
    "seas_judge_error": "judgeErrorRate",
    "seas_attack_asr": "attackASR",
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
# Adversarial ASR per group: metric base -> (RoundStatus field, label name).
BREAKDOWN_METRICS = {
    "seas_category_asr": ("byCategory", "category"),
    "seas_style_asr": ("byStyle", "style"),
}
BOUNDS = ("", "_low", "_high")
# Categories and styles come from the prompt sets, which users may replace with their own: every distinct value
# would be a new series per round and evolution. Each evolution exports at most this many values per breakdown
# (those with the most judged prompts over its rounds, the same set in every round so a round-over-round
# comparison lines up) and folds the rest into OTHER, its k and n summed. The shipped sets have 8 categories and
# 5 styles, so they are never folded.
MAX_BREAKDOWN_VALUES = 12
OTHER = "other"
EVOLUTION_LABELS = ["namespace", "evolution"]
ROUND_LABELS = EVOLUTION_LABELS + ["round"]
STAGE_LABELS = ROUND_LABELS + ["stage"]
BUILD_LABELS = ["version", "python_version"]


def ratio_name(base: str, bound: str = "") -> str:
    """``seas_direct_asr`` + ``_low`` -> ``seas_direct_asr_low_ratio``: the unit suffix comes last."""
    return f"{base}{bound}_ratio"


METRIC_NAMES = (
    *(ratio_name(name, bound) for name in RATE_METRICS for bound in BOUNDS),
    *VALUE_METRICS,
    *(ratio_name(name, bound) for name in BREAKDOWN_METRICS for bound in BOUNDS),
    *(ratio_name("seas_qa_accuracy_drop", bound) for bound in BOUNDS),
    "seas_regression_p_value",
    "seas_round_regressed",
    "seas_gate_passed",
    "seas_stage_duration_seconds",
    "seas_stage_failures",
    "seas_current_round",
    "seas_latest_round",
    "seas_latest_round_final",
    "seas_promoted_round",
    "seas_latest_round_promoted",
    "seas_target_asr_high_latest_ratio",
    "seas_qa_accuracy_drop_high_latest_ratio",
    "seas_regression_difference_latest_ratio",
    "seas_safety_regressed",
    "seas_gate_max_target_asr_ratio",
    "seas_gate_max_accuracy_drop_ratio",
    "seas_gate_max_benign_refusal_ratio",
    "seas_last_progress_timestamp_seconds",
    "seas_condition",
    "seas_build_info",
)


def _time(value: Optional[str]) -> Optional[float]:
    moment = parse_time(value)
    return None if moment is None else moment.timestamp()


def _help(field: str, bound: str = "") -> str:
    text = RoundStatus.model_fields[field].description or field
    return {"": f"{text} Per round.", "_low": f"Lower bound of: {text}", "_high": f"Upper bound of: {text}"}[bound]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def breakdown_values(breakdowns: Iterable[dict[str, Rate]], limit: int = MAX_BREAKDOWN_VALUES) -> set[str]:
    """The group names an evolution exports by name: the ``limit`` with the most judged prompts over ``breakdowns``.

    Ties go to the name that sorts first, so the choice is the same on every scrape and after a restart.
    """
    totals: dict[str, int] = {}
    for breakdown in breakdowns:
        for name, figure in breakdown.items():
            totals[name] = totals.get(name, 0) + figure.n
    if len(totals) <= limit:
        return set(totals)
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    return set(ranked[: limit - 1])  # one label value is left for OTHER


def fold_breakdown(breakdown: dict[str, Rate], kept: set[str]) -> dict[str, Rate]:
    """``breakdown`` with every group outside ``kept`` summed into one ``other`` group (k and n added, interval recomputed)."""
    out = {name: figure for name, figure in breakdown.items() if name in kept}
    rest = [figure for name, figure in breakdown.items() if name not in kept]
    if rest:
        k, n = sum(f.k for f in rest), sum(f.n for f in rest)
        confidence = rest[0].confidence
        if OTHER in out:  # a group really named "other" is merged with the folded ones
            k, n = k + out[OTHER].k, n + out[OTHER].n
        out[OTHER] = Rate.of(k, n, confidence)
    return out


def promoted_round(status: EvolutionStatus) -> int:
    """The round whose target is the promoted model: the latest that passed its gates with a trained model, else 0."""
    promoted = 0
    for entry in status.rounds:
        if entry.gate and entry.gate.passed and entry.targetModel:
            promoted = entry.round
    return promoted


def latest_round_is_final(status: EvolutionStatus) -> bool:
    """Whether the latest evaluated round is the cycle's last: its number reaches spec.rounds, the cycle is done,
    or the cycle is an evaluate-only re-check (its one evaluation is its outcome).

    Early rounds are expected to be unsafe (that is what training fixes), so the gate alert waits for this.
    """
    if not status.rounds:
        return False
    spec = status.activeSpec or {}
    if spec.get("mode") == "evaluate":
        return True
    planned = spec.get("rounds")
    if isinstance(planned, int) and status.rounds[-1].round >= planned:
        return True
    return status.stage == "Done"


def families(statuses: dict[tuple[str, str], EvolutionStatus]) -> list[GaugeMetricFamily]:
    """Every status-derived metric family for the given statuses, keyed by (namespace, evolution)."""
    rates = {ratio_name(name, bound): _gauge(ratio_name(name, bound), _help(field, bound), ROUND_LABELS)
             for name, field in RATE_METRICS.items() for bound in BOUNDS}
    values = {name: _gauge(name, _help(field), ROUND_LABELS) for name, field in VALUE_METRICS.items()}
    groups = {
        ratio_name(name, bound): _gauge(
            ratio_name(name, bound),
            f"{_help(field, bound)} At most {MAX_BREAKDOWN_VALUES} {label} values per evolution, the rest summed as {label}=\"{OTHER}\"; "
            "only rounds whose breakdown status keeps (round 0 and the latest two).",
            ROUND_LABELS + [label])
        for name, (field, label) in BREAKDOWN_METRICS.items() for bound in BOUNDS
    }
    drop = {bound: _gauge(ratio_name("seas_qa_accuracy_drop", bound),
                          f"QA accuracy lost versus round 0, paired by question{' (' + bound[1:] + ' bound)' if bound else ''}.", ROUND_LABELS)
            for bound in BOUNDS}
    p_value = _gauge("seas_regression_p_value", "Exact McNemar p-value of the round's unsafe answers against the previous round's.", ROUND_LABELS)
    regressed = _gauge("seas_round_regressed", "1 when the round is significantly less safe than the round before (paired test).", ROUND_LABELS)
    gate_passed = _gauge("seas_gate_passed", "1 when the round passed its gates, 0 when it failed.", ROUND_LABELS)
    duration = _gauge("seas_stage_duration_seconds", "Seconds the stage's last attempt took.", STAGE_LABELS)
    failures = _gauge("seas_stage_failures", "Failed attempts of the stage.", STAGE_LABELS)
    current = _gauge("seas_current_round", "Round the evolution is working on.", EVOLUTION_LABELS)
    latest_round = _gauge("seas_latest_round", "Latest evaluated round (it changes when a round ends).", EVOLUTION_LABELS)
    final = _gauge("seas_latest_round_final", "1 when the latest evaluated round is the cycle's last (spec.rounds reached, or the cycle is done).",
                   EVOLUTION_LABELS)
    promoted = _gauge("seas_promoted_round", "Round whose target is the promoted model (0: the starting model); it changes on a promotion.",
                      EVOLUTION_LABELS)
    latest_promoted = _gauge("seas_latest_round_promoted", "1 when the latest evaluated round's target is the promoted model.", EVOLUTION_LABELS)
    asr_high = _gauge("seas_target_asr_high_latest_ratio", "Latest evaluated round: the larger upper bound of direct and adversarial ASR.",
                      EVOLUTION_LABELS)
    drop_high = _gauge("seas_qa_accuracy_drop_high_latest_ratio", "Latest evaluated round: upper bound of the QA accuracy drop versus round 0.",
                       EVOLUTION_LABELS)
    difference = _gauge("seas_regression_difference_latest_ratio",
                        "Latest evaluated round: change of the unsafe share against the round before, paired by prompt (after minus before).",
                        EVOLUTION_LABELS)
    safety_regressed = _gauge("seas_safety_regressed", "1 when the latest round is significantly less safe than the one before.", EVOLUTION_LABELS)
    gates = {
        "maxTargetASR": _gauge("seas_gate_max_target_asr_ratio", "Configured maximum target ASR.", EVOLUTION_LABELS),
        "maxAccuracyDrop": _gauge("seas_gate_max_accuracy_drop_ratio", "Configured maximum QA accuracy drop.", EVOLUTION_LABELS),
        "maxBenignRefusalRate": _gauge("seas_gate_max_benign_refusal_ratio", "Configured maximum benign refusal rate.", EVOLUTION_LABELS),
    }
    progress = _gauge("seas_last_progress_timestamp_seconds", "Unix time a stage last started or finished.", EVOLUTION_LABELS)
    cond = _gauge("seas_condition", "1 when the condition is True.", EVOLUTION_LABELS + ["type"])
    build = _gauge("seas_build_info", "Always 1; the labels say which operator build and Python serve these metrics.", BUILD_LABELS)
    build.add_metric([__version__, platform.python_version()], 1.0)

    for (namespace, name), status in sorted(statuses.items()):
        ev = [namespace, name]
        kept = {field: breakdown_values(getattr(entry, field) for entry in status.rounds) for field, _ in BREAKDOWN_METRICS.values()}
        for entry in status.rounds:
            labels = ev + [str(entry.round)]
            for metric, field in RATE_METRICS.items():
                figure = getattr(entry, field)
                if figure is not None and figure.n:
                    for bound, value in zip(BOUNDS, (figure.rate, figure.low, figure.high)):
                        rates[ratio_name(metric, bound)].add_metric(labels, float(value))
            for metric, (field, _) in BREAKDOWN_METRICS.items():
                for group, figure in sorted(fold_breakdown(getattr(entry, field), kept[field]).items()):
                    if figure.n:
                        for bound, value in zip(BOUNDS, (figure.rate, figure.low, figure.high)):
                            groups[ratio_name(metric, bound)].add_metric(labels + [group], float(value))
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
            if latest.regression is not None and latest.regression.difference is not None:
                difference.add_metric(ev, latest.regression.difference)
            safety_regressed.add_metric(ev, 1.0 if latest.regressed else 0.0)
            latest_round.add_metric(ev, float(latest.round))
            final.add_metric(ev, 1.0 if latest_round_is_final(status) else 0.0)
            winner = promoted_round(status)
            promoted.add_metric(ev, float(winner))
            latest_promoted.add_metric(ev, 1.0 if latest.round > 0 and winner == latest.round else 0.0)
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
    return [*rates.values(), *values.values(), *groups.values(), *drop.values(), p_value, regressed, gate_passed, duration, failures, current,
            latest_round, final, promoted, latest_promoted, asr_high, drop_high, difference, safety_regressed, *gates.values(), progress, cond,
            build]


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


# A reconcile reads the object and its children, decides and patches: milliseconds against a healthy API server,
# up to the API timeout (30 s) per call when it is not.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UNEXPECTED = "Unexpected"  # the reason of a reconcile that raised something other than an API problem (a bug)


class OperatorMetrics:
    """One operator's metrics: the status-derived gauges and its own counters, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.statuses = StatusCollector()
        self.registry.register(self.statuses)
        # The operator's own work (not derived from status: they restart from zero with the process).
        self.reconciles = Counter("seas_operator_reconciles", "Reconciles the operator has run.", registry=self.registry)
        self.reconcile_duration = Histogram(
            "seas_operator_reconcile_duration_seconds", "Wall time of one reconcile of one evolution, failed ones included.",
            buckets=RECONCILE_BUCKETS, registry=self.registry,
        )
        self.api_calls = Counter(
            "seas_operator_api_calls", "Kubernetes API calls made by the reconciler (kopf's watches excluded).", registry=self.registry
        )
        self.reconcile_errors = Counter(
            "seas_operator_reconcile_errors",
            f"Reconciles that failed, by reason: the API problem (APIUnavailable is transient) or {UNEXPECTED} (a bug; see the log).",
            ["reason"], registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Serve /metrics on ``port`` in a background thread."""
        from prometheus_client import start_http_server

        start_http_server(port, registry=self.registry)
