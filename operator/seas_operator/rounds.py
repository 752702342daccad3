"""Pure summaries of finished rounds: the figures reports, status and metrics share."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .api import SafetyEvolutionSpec
from .gates import accuracy_drop, evaluate_gates
from .planner import StageKey, stage_graph


def _get(result: object, name: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


def _knowledge(result: object) -> dict[str, float]:
    figures = _get(result, "knowledge")
    return {k: _get(figures, k) for k in ("accuracy", "perplexity", "entropy", "probability")}


def round_summaries(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object]) -> list[dict[str, Any]]:
    """One entry per evaluated round, round 0 first, with gates applied to rounds >= 1."""
    baseline = done.get(StageKey(0, "evaluate"))
    base_accuracy = _knowledge(baseline)["accuracy"] if baseline is not None else None
    rounds = sorted({key.round for key, _ in stage_graph(spec)})
    out = []
    for r in rounds:
        evaluation = done.get(StageKey(r, "evaluate"))
        if evaluation is None:
            continue
        knowledge = _knowledge(evaluation)
        pairs = done.get(StageKey(r, "pairs"))
        seconds = sum(_get(res, "seconds", 0.0) or 0.0 for key, res in done.items() if key.round == r)
        judge = _get(evaluation, "judge")
        entry: dict[str, Any] = {
            "round": r,
            "target_asr": _get(evaluation, "targetASR"),
            "redteam_asr": _get(evaluation, "redteamASR"),
            "benign_refusal_rate": _get(evaluation, "benignRefusalRate"),
            "judge_error_rate": _get(evaluation, "judgeErrorRate"),
            "knowledge": knowledge,
            "accuracy_drop": accuracy_drop(knowledge["accuracy"], base_accuracy) if base_accuracy is not None else 0.0,
            "by_category": dict(_get(evaluation, "byCategory") or {}),
            "by_style": dict(_get(evaluation, "byStyle") or {}),
            "pairs": {"target": _get(pairs, "target", 0), "redteam": _get(pairs, "redteam", 0)} if pairs is not None else {"target": 0, "redteam": 0},
            "seconds": round(seconds, 1),
            "judge": {"type": _get(judge, "type"), "model": _get(judge, "model")},
            "records": _get(evaluation, "records"),
            "gate": None,
        }
        if r > 0 and base_accuracy is not None:
            outcome = evaluate_gates(spec.gates, entry["target_asr"], entry["benign_refusal_rate"], knowledge["accuracy"], base_accuracy, entry["judge_error_rate"] or 0.0)
            entry["gate"] = {"passed": outcome.passed, "failures": outcome.failures}
        trained = done.get(StageKey(r, "train-target"))
        entry["target_model"] = _get(trained, "model") if trained is not None else None
        out.append(entry)
    return out


def promoted_model(summaries: list[dict[str, Any]], start_model: str) -> str:
    """The target of the latest round that passed its gates, else the starting model."""
    promoted = start_model
    for entry in summaries:
        if entry["gate"] and entry["gate"]["passed"] and entry.get("target_model"):
            promoted = entry["target_model"]
    return promoted


def regressed(summaries: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The latest round, when it failed its gates."""
    if summaries and summaries[-1]["gate"] and not summaries[-1]["gate"]["passed"]:
        return summaries[-1]
    return None
