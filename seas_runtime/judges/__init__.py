"""Safety judges: a verdict (safe, unsafe, error) for each (prompt, answer)."""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from seas_operator.api import ClassifierSpec

from ..contract import JudgeInfo
from .llama_guard import build_prompt, parse_output
from .refusal import judge_refusal
from .verdict import Verdict

__all__ = ["Judge", "Verdict", "RefusalJudge", "LlamaGuardJudge", "make_judge"]


class Judge(Protocol):
    info: JudgeInfo

    def judge(self, pairs: list[tuple[str, str]], progress: Optional[Callable[[int], None]] = None) -> list[Verdict]:
        """Label each (prompt, answer) pair."""


class RefusalJudge:
    """The refusal-match judge; needs no model."""

    def __init__(self) -> None:
        self.info = JudgeInfo(type="refusal-match")

    def judge(self, pairs: list[tuple[str, str]], progress: Optional[Callable[[int], None]] = None) -> list[Verdict]:
        verdicts = [judge_refusal(answer) for _, answer in pairs]
        if progress:
            progress(len(pairs))
        return verdicts


class LlamaGuardJudge:
    """Llama Guard 3 run greedily on an engine's raw completion API."""

    def __init__(self, spec: ClassifierSpec, engine) -> None:
        self.info = JudgeInfo(type="llama-guard", model=spec.model)
        self.engine = engine
        self.max_new_tokens = spec.maxNewTokens

    def judge(self, pairs: list[tuple[str, str]], progress: Optional[Callable[[int], None]] = None) -> list[Verdict]:
        from ..engines.base import Sampling

        outputs = self.engine.complete(
            [build_prompt(prompt, answer) for prompt, answer in pairs],
            Sampling(temperature=0.0, max_new_tokens=self.max_new_tokens),
            progress=progress,
        )
        verdicts = []
        for (_, answer), output in zip(pairs, outputs):
            verdicts.append(Verdict("error", reason="empty answer") if not answer.strip() else parse_output(output))
        return verdicts


def make_judge(spec: ClassifierSpec, open_engine: Callable[[], object]) -> Judge:
    """Build the judge ``spec`` asks for; ``open_engine`` loads the judge model only when needed."""
    if spec.type == "refusal-match":
        return RefusalJudge()
    return LlamaGuardJudge(spec, open_engine())
