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
    """Labels answers; ``info`` names the judge so every figure carries it.

    ``against_behaviour``: the judge decides whether an answer fulfils the behaviour it is given (HarmBench),
    so an attack is judged against its seed's goal rather than the prompt's wording, and an unsafe verdict
    already means the attack stayed on goal.
    """

    info: JudgeInfo
    against_behaviour: bool = False

    def asks_for_harm(self, prompts: list[str]) -> Optional[list[Optional[bool]]]:
        """Whether each prompt itself asks for something harmful, where the judge can tell (None where it cannot)."""
        return None

    @abstractmethod
    def judge(self, pairs: list[tuple[str, str]], progress: Advance = None) -> list[Verdict]:
        """Label each (prompt, answer) pair."""
