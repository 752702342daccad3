"""The engine interface shared by the transformers (CPU/GPU) and vLLM (GPU) engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, TypeVar

Messages = list[dict[str, str]]
Advance = Optional[Callable[[int], None]]  # advances a progress task by a number of items
T = TypeVar("T")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; temperature 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation`` as the raw-text continuation of ``prompt`` (no chat template)."""

    prompt: str
    continuation: str


@dataclass(frozen=True)
class ContinuationScore:
    """Summed log-probability of the continuation's tokens, and how many there were."""

    logprob: float
    tokens: int


class Engine(ABC):
    """Generates chat replies and raw completions, and scores continuations."""

    name: str = "engine"

    @abstractmethod
    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        """One assistant reply per conversation."""

    @abstractmethod
    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None) -> list[str]:
        """One raw completion per prompt (no chat template)."""

    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        """Log-probabilities of continuations and options under the model."""

    def close(self) -> None:
        """Free the model's memory."""


def batches(items: Sequence[T], size: int) -> Iterator[tuple[int, Sequence[T]]]:
    """Consecutive slices of ``items`` with their start index."""
    for start in range(0, len(items), max(1, size)):
        yield start, items[start : start + size]
