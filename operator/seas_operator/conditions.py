"""Kubernetes-style status conditions, computed whole (a merge patch replaces the list)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "SafetyRegressed")


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # RFC 3339 in UTC, as Kubernetes writes status times


def format_time(moment: datetime) -> str:
    """A status timestamp."""
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """A status timestamp back as an aware datetime; None for an empty value."""
    if not value:
        return None
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc)


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
