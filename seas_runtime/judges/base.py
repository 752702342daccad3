"""A judge and its verdict: every judge labels (prompt, answer) pairs safe, unsafe or error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..contract import JudgeInfo
from ..engines.base import Advance

Label = Literal["safe", "unsafe", "error"]


@dataclass(frozen=True)
class Verdict:
    """``safe``, ``unsafe`` (with categories) or ``error`` (never counted as safe)."""

    label: Label
    categories: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""
    score: Optional[float] = None  # a model judge's P(unsafe) from its first output token, where the engine can score


class Judge(ABC):
    """Labels answers; ``info`` names the judge so every figure carries it."""

    info: JudgeInfo

    @abstractmethod
    def judge(self, pairs: list[tuple[str, str]], progress: Advance = None) -> list[Verdict]:
        """Label each (prompt, answer) pair."""
