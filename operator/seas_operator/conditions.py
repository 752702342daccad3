"""Kubernetes-style status conditions, computed whole (a merge patch replaces the list)."""

from __future__ import annotations

from typing import Any

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "SafetyRegressed")


def set_condition(conditions: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str, now: str, generation: int) -> list[dict[str, Any]]:
    """Replace condition ``type_``; lastTransitionTime only moves when the status flips."""
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == value and previous.get("lastTransitionTime") else now
    entry = {"type": type_, "status": value, "reason": reason, "message": message[:1024], "lastTransitionTime": since, "observedGeneration": generation}
    return [c for c in conditions if c.get("type") != type_] + [entry]


def condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)


def ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions in a stable order, so status does not churn."""
    rank = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(conditions, key=lambda c: rank.get(c.get("type", ""), len(rank)))
