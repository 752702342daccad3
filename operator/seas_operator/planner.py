"""The one planner: (spec, finished stages, running stages) -> the stages to start next.

Pure functions only. ``seas run`` and the Kubernetes operator both call it, so
the order of stages and the lineage of models are defined here and nowhere else.

Round 0 evaluates the untouched target (after the optional red-team
initialization); each round r >= 1 runs attack -> pairs -> train-target and
train-redteam (in parallel) -> evaluate. Round r attacks with the models round
r-1 produced, so training continues from the latest models (SEAS); gates decide
which round's target is promoted.

In mode evaluate a cycle is round 0 only: the evaluation of the given target and,
when ``evaluateOnly.attack`` asks for it, an attack on it (``r0/attack``), side by
side; nothing is initialized, paired or trained.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Optional, TypeVar

from seas_runtime.contract import InitializeResult, Stage, StageKey, StageResult, TrainResult
from seas_runtime.settings import ModelRef

from .api import SafetyEvolutionSpec

# The stages that finished, with their results; None where the operator compacted an old round's result away
# (status.compact_stages): finished for planning, but nothing reads it (rounds_in_use keeps what is read).
Done = Mapping[StageKey, Optional[StageResult]]
R = TypeVar("R", bound=StageResult)


def stage_graph(spec: SafetyEvolutionSpec) -> list[tuple[StageKey, tuple[StageKey, ...]]]:
    """Every stage of a cycle with the stages it waits for, in execution order."""
    if spec.evaluate_only:
        return list(_evaluate_graph(spec.evaluateOnly.attack))
    return list(_graph(spec.rounds, spec.initialization.enabled, spec.training.trainRedTeam))


def _evaluate_graph(attack: bool) -> tuple[tuple[StageKey, tuple[StageKey, ...]], ...]:
    # Both read the untouched target only, so neither waits for the other.
    evaluate = ((StageKey(0, Stage.EVALUATE), ()),)
    return evaluate + (((StageKey(0, Stage.ATTACK), ()),) if attack else ())


def describe(spec: SafetyEvolutionSpec) -> str:
    """What a cycle runs, in a few words (``seas validate`` and ``seas run`` say it)."""
    if spec.evaluate_only:
        return "evaluate only" + (", with an attack" if spec.evaluateOnly.attack else "")
    return f"{spec.rounds} rounds"


@lru_cache(maxsize=64)
def _graph(rounds: int, initialize: bool, train_redteam: bool) -> tuple[tuple[StageKey, tuple[StageKey, ...]], ...]:
    # Cached: every reconcile asks for the graph several times, and a 100-round graph has some 500 stages.
    graph: list[tuple[StageKey, tuple[StageKey, ...]]] = []
    baseline_deps: tuple[StageKey, ...] = ()
    if initialize:
        init = StageKey(0, Stage.INITIALIZE)
        graph.append((init, ()))
        baseline_deps = (init,)
    previous = StageKey(0, Stage.EVALUATE)
    graph.append((previous, baseline_deps))
    for r in range(1, rounds + 1):
        attack, pairs = StageKey(r, Stage.ATTACK), StageKey(r, Stage.PAIRS)
        trains = [StageKey(r, Stage.TRAIN_TARGET)]
        if train_redteam:
            trains.append(StageKey(r, Stage.TRAIN_REDTEAM))
        evaluate = StageKey(r, Stage.EVALUATE)
        graph += [(attack, (previous,)), (pairs, (attack,))]
        graph += [(t, (pairs,)) for t in trains]
        graph.append((evaluate, tuple(trains)))
        previous = evaluate
    return tuple(graph)


def next_stages(spec: SafetyEvolutionSpec, done: Done, running: frozenset[StageKey] | set[StageKey] = frozenset()) -> list[StageKey]:
    """Stages whose dependencies are all done and that are neither done nor running, in order."""
    return [key for key, deps in stage_graph(spec) if key not in done and key not in running and all(d in done for d in deps)]


def is_complete(spec: SafetyEvolutionSpec, done: Done) -> bool:
    """Whether every stage of the cycle has a result."""
    return all(key in done for key, _ in stage_graph(spec))


def current_stage(spec: SafetyEvolutionSpec, done: Done) -> Optional[StageKey]:
    """The first stage without a result (what the evolution is working on)."""
    return next((key for key, _ in stage_graph(spec) if key not in done), None)


def result_of(done: Done, key: StageKey, kind: type[R], required: bool = False) -> Optional[R]:
    """The result of stage ``key`` when it finished, checked to be a ``kind``; None when it has not (KeyError if ``required``).

    Raises KeyError for a finished stage whose result was compacted away: reading it is a bug of :func:`rounds_in_use`,
    and guessing (e.g. falling back to an older red team) would be silently wrong.
    """
    result = done.get(key)
    if result is None and key in done:
        raise KeyError(f"{key.label} finished but its result was compacted away")
    if result is None:
        if required:
            raise KeyError(f"{key.label} has no result yet")
        return None
    if not isinstance(result, kind):
        raise TypeError(f"{key.label} holds a {result.stage} result, not a {kind.__name__}")
    return result


def target_model(spec: SafetyEvolutionSpec, done: Done, round_: int, start: Optional[str] = None) -> ModelRef:
    """The target after ``round_`` (round 0: the starting model, e.g. the promoted one of the last cycle)."""
    if round_ == 0:
        return spec.target if start is None else spec.target.model_copy(update={"model": start})
    trained = result_of(done, StageKey(round_, Stage.TRAIN_TARGET), TrainResult, required=True)
    return spec.target.model_copy(update={"model": trained.model})


def redteam_model(spec: SafetyEvolutionSpec, done: Done, round_: int) -> ModelRef:
    """The red team after ``round_``: initialized at round 0 when asked, retrained each round unless disabled."""
    if round_ == 0:
        init = result_of(done, StageKey(0, Stage.INITIALIZE), InitializeResult)
        return spec.redTeam if init is None else spec.redTeam.model_copy(update={"model": init.model})
    trained = result_of(done, StageKey(round_, Stage.TRAIN_REDTEAM), TrainResult)
    if trained is None:
        return redteam_model(spec, done, round_ - 1)
    return spec.redTeam.model_copy(update={"model": trained.model})


def rounds_in_use(spec: SafetyEvolutionSpec, done: Done) -> frozenset[int]:
    """The rounds whose results the stages still to run read (see ``stage_configs``); the others may be compacted.

    Round 0 (every evaluation pairs with its records; the initialized red team), every unfinished round, the
    latest finished round (its models start the next round, its evaluation records pair with the next one's)
    and the latest round that trained the red team (rounds that do not train it keep its model).
    """
    graph = [key for key, _ in stage_graph(spec)]
    unfinished = {key.round for key in graph if key not in done}
    finished = {key.round for key in graph} - unfinished
    redteam = [key.round for key in done if key.stage == Stage.TRAIN_REDTEAM]
    return frozenset({0} | unfinished | {max(finished, default=0)} | {max(redteam, default=0)})
