"""Kubernetes-style status conditions and timestamps, computed whole (a merge patch replaces the list)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from .status import Condition, ConditionStatus, ConditionType

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # RFC 3339 in UTC, as Kubernetes writes status times


def format_time(moment: datetime) -> str:
    """A status timestamp."""
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """A status timestamp back as an aware datetime; None for an empty value."""
    if not value:
        return None
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc)


def set_condition(conditions: list[Condition], type_: ConditionType, status: bool, reason: str, message: str, now: str, generation: int) -> list[Condition]:
    """Replace condition ``type_``, keeping the stable order; lastTransitionTime only moves when the status flips."""
    value = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.lastTransitionTime if previous and previous.status == value and previous.lastTransitionTime else now
    entry = Condition(type=type_, status=value, reason=reason, message=message[:1024], lastTransitionTime=since, observedGeneration=generation)
    return ordered([c for c in conditions if c.type != type_] + [entry])


def ordered(conditions: list[Condition]) -> list[Condition]:
    """Conditions in the order of ``ConditionType``, so status does not churn."""
    rank = {t: i for i, t in enumerate(ConditionType)}
    return sorted(conditions, key=lambda c: rank[c.type])
