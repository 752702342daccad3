"""The one planner: (spec, finished stages, running stages) -> the stages to start next.

Pure functions only. ``seas run`` and the Kubernetes operator both call it, so
the order of stages and the lineage of models are defined here and nowhere else.

Round 0 evaluates the untouched target (after the optional red-team
initialization); each round r >= 1 runs attack -> pairs -> train-target and
train-redteam (in parallel) -> evaluate. Round r attacks with the models round
r-1 produced, so training continues from the latest models (SEAS); gates decide
which round's target is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from .api import ModelRef, SafetyEvolutionSpec

STAGE_ORDER = ("initialize", "attack", "pairs", "train-target", "train-redteam", "evaluate")


@dataclass(frozen=True, order=True)
class StageKey:
    """One stage of one round."""

    round: int
    stage: str

    def child_name(self, evolution: str, cycle: int = 0) -> str:
        """Deterministic child object name, so a restarted operator adopts what exists."""
        prefix = evolution if cycle == 0 else f"{evolution}-c{cycle}"
        return f"{prefix}-r{self.round}-{self.stage}"

    @property
    def label(self) -> str:
        return f"r{self.round}/{self.stage}"


def stage_graph(spec: SafetyEvolutionSpec) -> list[tuple[StageKey, tuple[StageKey, ...]]]:
    """Every stage of a cycle with the stages it waits for, in execution order."""
    graph: list[tuple[StageKey, tuple[StageKey, ...]]] = []
    baseline_deps: tuple[StageKey, ...] = ()
    if spec.initialization.enabled:
        init = StageKey(0, "initialize")
        graph.append((init, ()))
        baseline_deps = (init,)
    previous = StageKey(0, "evaluate")
    graph.append((previous, baseline_deps))
    for r in range(1, spec.rounds + 1):
        attack, pairs = StageKey(r, "attack"), StageKey(r, "pairs")
        trains = [StageKey(r, "train-target")]
        if spec.training.trainRedTeam:
            trains.append(StageKey(r, "train-redteam"))
        evaluate = StageKey(r, "evaluate")
        graph += [(attack, (previous,)), (pairs, (attack,))]
        graph += [(t, (pairs,)) for t in trains]
        graph.append((evaluate, tuple(trains)))
        previous = evaluate
    return graph


def next_stages(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object], running: frozenset[StageKey] | set[StageKey] = frozenset()) -> list[StageKey]:
    """Stages whose dependencies are all done and that are neither done nor running, in order."""
    return [key for key, deps in stage_graph(spec) if key not in done and key not in running and all(d in done for d in deps)]


def is_complete(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object]) -> bool:
    """Whether every stage of the cycle has a result."""
    return all(key in done for key, _ in stage_graph(spec))


def current_stage(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object]) -> Optional[StageKey]:
    """The first stage without a result (what the evolution is working on)."""
    return next((key for key, _ in stage_graph(spec) if key not in done), None)


def _model(result: object) -> str:
    return getattr(result, "model")


def target_model(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object], round_: int, start: Optional[str] = None) -> ModelRef:
    """The target after ``round_`` (round 0: the starting model, e.g. the promoted one of the last cycle)."""
    if round_ == 0:
        return spec.target if start is None else spec.target.model_copy(update={"model": start})
    return spec.target.model_copy(update={"model": _model(done[StageKey(round_, "train-target")])})


def redteam_model(spec: SafetyEvolutionSpec, done: Mapping[StageKey, object], round_: int) -> ModelRef:
    """The red team after ``round_``: initialized at round 0 when asked, retrained each round unless disabled."""
    if round_ == 0:
        init = done.get(StageKey(0, "initialize"))
        return spec.redTeam if init is None else spec.redTeam.model_copy(update={"model": _model(init)})
    trained = done.get(StageKey(round_, "train-redteam"))
    if trained is None:
        return redteam_model(spec, done, round_ - 1)
    return spec.redTeam.model_copy(update={"model": _model(trained)})
