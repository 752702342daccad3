"""Safety judges: a verdict (safe, unsafe, error) for each (prompt, answer), and the choice between them.

A new judge is a :class:`~.base.Judge` subclass in its own module, listed in
``ClassifierSpec.type`` and in :func:`make_judge`.
"""

from __future__ import annotations

from typing import Callable

from ..engines.base import Engine
from ..settings import ClassifierSpec, ModelRef
from .base import Judge, Verdict
from .harmbench import HarmBenchJudge
from .llama_guard import LlamaGuardJudge
from .refusal import RefusalJudge

__all__ = ["Judge", "Verdict", "RefusalJudge", "LlamaGuardJudge", "HarmBenchJudge", "make_judge"]


def make_judge(spec: ClassifierSpec, open_engine: Callable[[ModelRef], Engine]) -> Judge:
    """The judge ``spec`` asks for; ``open_engine`` loads the judge model (or reaches the served one), only for judges that need one."""
    ref = spec.judge_ref()
    if ref is None:
        return RefusalJudge()
    engine = open_engine(ref)
    return HarmBenchJudge(spec, engine) if spec.type == "harmbench" else LlamaGuardJudge(spec, engine)
