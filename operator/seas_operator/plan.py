"""``seas plan``: the exact child objects the operator would create for a stage, like ``helm template``.

A platform team reviews them, or dry-runs them with ``kubectl apply --dry-run=server -f -``,
before the operator ever creates one. Nothing here builds an object itself: each stage is
launched by the reconcile loop's own phase (``reconcile.launch_due``: ``stage_configs``,
the ``policy`` checks, ``pod_template`` and ``builders``) with the operator's settings
(``SEAS_*`` environment variables, else the chart's defaults), on a status in which every
stage before it finished. Those earlier results are assumed: a stage's config names the
artifacts its inputs wrote (``<stage dir>/records.jsonl``, ``target.jsonl``, ``model`` ...),
and those paths are where the runtime writes them (``seas_runtime/stages``). Pure: no API
call, no file written.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

import yaml

from seas_runtime.contract import (
    AttackResult,
    EvaluateResult,
    InitializeResult,
    PairsResult,
    Stage,
    StageKey,
    StageResult,
    TRAIN_STAGES,
    TrainResult,
)
from seas_runtime.layout import cluster_root, stage_dir

from .api import SafetyEvolution
from .builders import StageObject
from .names import child_name
from .planner import stage_graph
from .reconcile import Context, Observed, launch_due
from .settings import OperatorSettings

OUTPUTS = ("yaml", "json")
DEFAULT_NAMESPACE = "default"
# The SafetyEvolution's uid goes in every child's ownerReference; before the object exists there is none.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
PLAN_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)  # only stamps status entries, never a child

# What each stage leaves in its folder for the stages after it (seas_runtime/stages/<stage>.py).
RECORDS, TARGET_PAIRS, REDTEAM_PAIRS, MODEL = "records.jsonl", "target.jsonl", "redteam.jsonl", "model"


class PlanError(ValueError):
    """The stage or round asked for is not in the evolution, or its child cannot be built; the message is one line."""


def parse_stage(text: str) -> tuple[Stage, Optional[int]]:
    """``train-target`` or ``r1/train-target`` -> (stage, round or None); PlanError for an unknown stage."""
    round_: Optional[int] = None
    name = text.strip()
    if "/" in name:
        prefix, name = name.split("/", 1)
        if not (prefix.startswith("r") and prefix[1:].isdigit()):
            raise PlanError(f"--stage {text!r}: expected a stage name (e.g. train-target) or r<round>/<stage> (e.g. r1/train-target)")
        round_ = int(prefix[1:])
    try:
        return Stage(name), round_
    except ValueError:
        raise PlanError(f"unknown stage {name!r}; stages: {', '.join(s.value for s in Stage)}") from None


def select_stages(evolution: SafetyEvolution, stage: Optional[str] = None, round_: Optional[int] = None) -> list[StageKey]:
    """The stages to plan: ``stage`` (its first round unless ``round_``), every stage of ``round_``, or the whole cycle."""
    name, spec = evolution.metadata.name, evolution.spec
    graph = [key for key, _ in stage_graph(spec)]
    rounds = sorted({key.round for key in graph})
    wanted: Optional[Stage] = None
    if stage is not None:
        wanted, in_label = parse_stage(stage)
        if in_label is not None and round_ is not None and in_label != round_:
            raise PlanError(f"--stage {stage!r} names round {in_label} but --round is {round_}")
        round_ = in_label if in_label is not None else round_
    if round_ is not None and round_ not in rounds:
        raise PlanError(f"round {round_} is not in {name}: its rounds are {rounds[0]}..{rounds[-1]}")
    keys = [k for k in graph if (wanted is None or k.stage == wanted) and (round_ is None or k.round == round_)]
    if wanted is not None and round_ is None:
        keys = keys[:1]  # the first round that runs it
    if not keys:
        if round_ is None:
            raise PlanError(f"{name} never runs {wanted}: its stages are {', '.join(dict.fromkeys(k.stage.value for k in graph))}")
        runs = ", ".join(k.stage.value for k in graph if k.round == round_)
        raise PlanError(f"{name} runs no {wanted} in round {round_}; round {round_} runs {runs}")
    return keys


def assumed_done(evolution: SafetyEvolution, key: StageKey, root: str) -> dict[StageKey, StageResult]:
    """Every stage before ``key`` in the cycle, finished with the artifact paths the runtime would report.

    Built without validation (``model_construct``): only the paths the stage configs read are known before a
    run; the figures are not, and nothing reads them here.
    """
    done: dict[StageKey, StageResult] = {}
    for earlier, _ in stage_graph(evolution.spec):
        if earlier == key:
            break
        folder = stage_dir(root, earlier)
        result: StageResult
        if earlier.stage == Stage.INITIALIZE:
            result = InitializeResult.model_construct(round=earlier.round, model=f"{folder}/{MODEL}", examples=0)
        elif earlier.stage == Stage.ATTACK:
            result = AttackResult.model_construct(round=earlier.round, records=f"{folder}/{RECORDS}")
        elif earlier.stage == Stage.PAIRS:
            result = PairsResult.model_construct(round=earlier.round, targetFile=f"{folder}/{TARGET_PAIRS}", redteamFile=f"{folder}/{REDTEAM_PAIRS}")
        elif earlier.stage in TRAIN_STAGES:
            result = TrainResult.model_construct(stage=earlier.stage, round=earlier.round, model=f"{folder}/{MODEL}", trained=True, pairs=0)
        else:
            result = EvaluateResult.model_construct(round=earlier.round, records=f"{folder}/{RECORDS}")
        done[earlier] = result
    return done


def _context(evolution: SafetyEvolution, settings: OperatorSettings) -> Context:
    meta = evolution.metadata
    uid = str(getattr(meta, "uid", None) or PLACEHOLDER_UID)
    generation = getattr(meta, "generation", None)
    return Context(name=meta.name, namespace=meta.namespace or DEFAULT_NAMESPACE, uid=uid,
                   generation=generation if isinstance(generation, int) else 1, now=PLAN_TIME, settings=settings)


def plan_stage(evolution: SafetyEvolution, key: StageKey, settings: OperatorSettings) -> StageObject:
    """The child the operator creates for ``key`` in the first cycle, once the stages before it finished."""
    ctx = _context(evolution, settings)
    spec = evolution.spec
    done = assumed_done(evolution, key, cluster_root(spec.storage.mountPath, ctx.namespace, ctx.name, 0))
    name = child_name(ctx.name, key, 0)
    try:
        launched = launch_due(spec, {}, done, Observed(), 0, spec.target.model, ctx)
    except ValueError as exc:  # reconcile.SpecProblem, or a config the spec cannot make
        raise PlanError(f"{key.label}: {exc}") from None
    found = next((obj for obj in launched.create if obj.name == name), None)
    if found is None:  # the planner did not start it: a bug here, not a user mistake
        raise RuntimeError(f"the operator would not start {key.label} after the stages before it")
    return found


def plan(evolution: SafetyEvolution, settings: OperatorSettings, stage: Optional[str] = None,
         round_: Optional[int] = None) -> list[tuple[StageKey, StageObject]]:
    """The children of the stages :func:`select_stages` picks, in the order the operator starts them."""
    return [(key, plan_stage(evolution, key, settings)) for key in select_stages(evolution, stage, round_)]


def render(planned: list[tuple[StageKey, StageObject]], output: str = "yaml", source: str = "") -> str:
    """YAML documents (``---`` between them, each under a ``# Source:`` comment), or JSON: one object, or a v1 List of several."""
    if output not in OUTPUTS:
        raise PlanError(f"unknown output {output!r}; choose {' or '.join(OUTPUTS)}")
    bodies: list[dict[str, Any]] = [obj.body for _, obj in planned]
    if output == "json":
        document: Any = bodies[0] if len(bodies) == 1 else {"apiVersion": "v1", "kind": "List", "items": bodies}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    parts = []
    for key, obj in planned:
        where = f"{source} " if source else ""
        header = f"# Source: seas plan {where}{key.label} ({obj.kind} {obj.name})\n"
        parts.append("---\n" + header + yaml.safe_dump(obj.body, sort_keys=False, allow_unicode=True, width=10_000))
    return "".join(parts)


__all__ = ["OUTPUTS", "PlanError", "assumed_done", "parse_stage", "plan", "plan_stage", "render", "select_stages"]
