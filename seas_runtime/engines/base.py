"""The engine interface shared by the transformers (CPU/GPU) and vLLM (GPU) engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

Messages = list[dict[str, str]]
Advance = Optional[Callable[[int], None]]  # advances a progress task by a number of items


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


TOP_K_STATS = 10  # the next-token distribution's top-k whose entropy a Generation records (arXiv 2409.19476)


@dataclass(frozen=True)
class Generation:
    """A generated answer with per-token statistics, for knowledge drift in generation mode."""

    text: str
    logprobs: tuple[float, ...]  # log-probability of each generated token (end-of-text excluded)
    entropies: tuple[float, ...]  # entropy (nats) of the top-10 next-token distribution, renormalised, at each step
    top_probs: tuple[float, ...]  # probability of the most likely next token at each step


class Engine(ABC):
    """Generates chat replies and raw completions, and scores continuations.

    A ``templated`` prompt is text that already holds its special tokens (what
    :meth:`render` returns): it is tokenized without adding any, so the
    beginning-of-text token is never doubled.
    """

    name: str = "engine"
    tokenizer: Any = None  # a transformers tokenizer
    served: bool = False  # the model runs behind an API whose server applies its chat template (no tokenizer here)

    @abstractmethod
    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        """One assistant reply per conversation."""

    @abstractmethod
    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        """One raw completion per prompt."""

    @abstractmethod
    def chat_details(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[Generation]:
        """One assistant reply per conversation, with the log-probability, top-10 entropy and top probability of each token."""

    def render(self, messages: Messages, **template_vars: Any) -> str:
        """The model's own chat template applied to ``messages``, ending where the assistant speaks next."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_vars)

    def chat_template(self) -> str:
        """The tokenizer's chat template source ('' when it has none)."""
        return str(getattr(self.tokenizer, "chat_template", None) or "")

    def first_token_probs(self, prompts: Sequence[str], candidates: Sequence[str], templated: bool = False) -> Optional[list[dict[str, float]]]:
        """Per prompt, the probability that the first generated token is each candidate's first token.

        None when the engine cannot score (a judge then records no probability).
        """
        return None

    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        """Log-probabilities of continuations and options under the model."""

    def close(self) -> None:
        """Free the model's memory."""


def row_seeds(seed: int, rows: int) -> list[int]:
    """One sampling seed per request, from the call's seed and the request's index.

    Both engines use it, so a request's sample does not depend on how requests are batched, and several
    requests for the same prompt (an attack's samples per seed, a target's answers per prompt) differ.
    """
    return [seed * 1_000_003 + index for index in range(rows)]
