"""A judge's verdict on one answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Label = Literal["safe", "unsafe", "error"]


@dataclass(frozen=True)
class Verdict:
    """``safe``, ``unsafe`` (with categories) or ``error`` (never counted as safe)."""

    label: Label
    categories: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""
