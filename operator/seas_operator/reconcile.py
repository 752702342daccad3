"""The pure reconcile step: (object, observed children, now) -> (status, children to create, events).

Level-triggered: everything is recomputed from the stored status and what
exists in the cluster. Child names are deterministic, so a restarted operator
adopts a child it created before it could record it. The kopf handlers in
``handlers.py`` are a thin shell around :func:`decide`, which runs these named
phases in order, each a pure function with its own table tests:

1. :func:`retry_after_edit`: an edit applies at once to stages waiting for a retry or out of retries;
2. :func:`fold_children`: finished children become results, failures or retries; stuck and overdue children fail;
3. :func:`apply_spec_at_boundary`: a spec edit takes effect at the next round boundary;
4. :func:`launch_due`: due retries, vanished children and the planner's next stages get children;
5. :func:`compute_conditions`: figures, gates and the four conditions;
6. :func:`schedule_next_cycle`: on ``spec.schedule``, a new cycle from the promoted model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, Optional, Sequence

from croniter import croniter
from pydantic import ValidationError

from seas_runtime.contract import USER_ERROR_EXIT_CODES, Stage, StageKey, StageResult, parse_stage_result
from seas_runtime.layout import cluster_cache, cluster_root
from seas_runtime.problems import validation_problems
from seas_runtime.stats import Rate

from .api import API_VERSION, KIND, SafetyEvolution, SafetyEvolutionSpec
from .builders import Owner, StageObject, build_stage_object, training_backend
from .children import ChildPhase, start_time, suspended
from .conditions import format_time, parse_time, set_condition
from .kinds import CHILD_KINDS, LABEL_CYCLE, kind_named
from .names import MAX_ATTEMPTS, child_name
from .planner import Done, current_stage, is_complete, next_stages, rounds_in_use, stage_graph
from .pod_template import stage_pod
from .policy import policy_problems
from .recheck import carried_rounds, cycle_entry, ignored_message, previous_records, ready_message, record_cycle, regression_condition
from .retention import children_to_prune, cycle_roots_to_prune, pruned_message
from .rounds import promoted_model, round_summaries, trim_breakdowns
from .settings import OperatorSettings
from .stage_configs import build_stage_config
from .status import (
    Condition,
    ConditionType,
    EvolutionStatus,
    HistoryEntry,
    HistoryRound,
    Phase,
    RoundStatus,
    StageEntry,
    StageState,
    compact_stages,
    parse_status,
)


class Event(NamedTuple):
    """An Event to post on the SafetyEvolution."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Observed:
    """What the shell read from the API for this evolution."""

    children: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Job/PyTorchJob/TrainJob owned by this evolution
    messages: dict[str, Optional[str]] = field(default_factory=dict)  # child name -> termination message
    pod_reasons: dict[str, str] = field(default_factory=dict)  # child name -> why its pod failed
    exit_codes: dict[str, int] = field(default_factory=dict)  # child name -> the stage container's exit code
    stuck: dict[str, str] = field(default_factory=dict)  # running child -> why its pod cannot start (ImagePullBackOff, ...)
    disrupted: set[str] = field(default_factory=set)  # failed children whose pod the cluster took away (eviction, drain)


@dataclass
class Decision:
    status: EvolutionStatus
    create: list[StageObject] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) of children the operator ends
    events: list[Event] = field(default_factory=list)
    requeue_after: Optional[float] = None


@dataclass(frozen=True)
class Context:
    """What every phase may read: the object's identity, the clock and the operator's settings."""

    name: str
    namespace: str
    uid: str
    generation: int
    now: datetime
    settings: OperatorSettings

    @property
    def now_s(self) -> str:
        return format_time(self.now)


def _rate(figure: Optional[Rate]) -> Optional[float]:
    return figure.rate if figure is not None else None


def _backoff(failures: int, settings: OperatorSettings) -> float:
    return min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, failures - 1))


def _in_state(stages: dict[str, StageEntry], *states: StageState) -> list[str]:
    return [label for label, entry in stages.items() if entry.state in states]


def degraded_status(status: EvolutionStatus, generation: int, reason: str, message: str, now: str) -> EvolutionStatus:
    """Status for an evolution that cannot be acted on now: Degraded (and not Ready) with ``reason`` and ``message``.

    Only ``InvalidSpec`` asks the user to edit the spec; any other reason (a bug, the API failing) is retried by the operator.
    """
    next_step = "fix the spec to continue" if reason == "InvalidSpec" else "the operator retries"
    conditions = set_condition(status.conditions, ConditionType.DEGRADED, True, reason, message, now, generation)
    conditions = set_condition(conditions, ConditionType.READY, False, reason, message, now, generation)
    conditions = set_condition(conditions, ConditionType.PROGRESSING, False, reason, next_step, now, generation)
    return status.model_copy(update=dict(
        observedGeneration=generation, message=message[:1024], conditions=conditions,
        phase=(Phase.FAILED if reason == "InvalidSpec" else Phase.DEGRADED) if not status.stages else (status.phase or Phase.DEGRADED),
    ))


# --- phase 1 -----------------------------------------------------------------------


def retry_after_edit(stages: dict[str, StageEntry], edited: bool, ctx: Context) -> tuple[dict[str, StageEntry], list[Event], bool]:
    """(stages, events, applies): an edit while a stage waits for a retry, or after it ran out of retries, applies to its next attempt.

    Fixing a Secret, raising memory after an OOMKill or correcting the model is what a user edits a failing
    evolution for, so such an edit takes effect at once; a stage that ran out of retries gets a fresh budget.
    """
    waiting = _in_state(stages, StageState.WAITING)
    exhausted = _in_state(stages, StageState.FAILED)
    if not edited or not (waiting or exhausted):
        return stages, [], False
    stages = dict(stages)
    events = []
    for label in exhausted:
        if stages[label].attempts >= MAX_ATTEMPTS:
            events.append(Event("Warning", "StageFailed", f"{label} used all {MAX_ATTEMPTS} attempts of this cycle; it is not retried"))
            continue
        stages[label] = stages[label].model_copy(update=dict(state=StageState.WAITING, failures=0, retryAt=ctx.now_s))
        events.append(Event("Normal", "StageRetrying", f"{label}: retrying after the spec changed (generation {ctx.generation})"))
    for label in waiting:
        events.append(Event("Normal", "SpecApplied", f"{label}: its next attempt follows generation {ctx.generation}"))
    return stages, events, True


# --- phase 2 -----------------------------------------------------------------------

PENDING = "Pending: "  # entry.reason of a running stage whose pod cannot start
DEADLINE_GRACE_SECONDS = 300  # beyond spec.activeDeadlineSeconds, for the child's own deadline to act first
MAX_DISRUPTIONS = 5  # attempts lost to the cluster before they count as failures (a node pool that keeps draining)


def read_result(message: Optional[str], key: StageKey) -> StageResult:
    """The stage result a child reported for ``key`` (raises ValueError when it is missing, malformed or another stage's)."""
    if not message:
        raise ValueError("the stage left no result (empty termination message)")
    try:
        result = parse_stage_result(message)
    except ValidationError as exc:
        raise ValueError(str(exc).splitlines()[0] + ": " + "; ".join(validation_problems(exc))[:200]) from None
    if result.key != key:
        raise ValueError(f"the result is for {result.key.label}, not {key.label}")
    return result


@dataclass(frozen=True)
class Outcome:
    """What became of a running stage's attempt this reconcile."""

    result: Optional[StageResult] = None  # it succeeded
    failure: str = ""  # it failed, and why
    retryable: bool = True
    disrupted: bool = False  # the cluster took the pod away: retried without using up spec.retries
    delete: bool = False  # the operator ends the child (stuck or past its deadline)
    stuck: str = ""  # still running, but its pod cannot start


def _time_or_none(value: str) -> Optional[datetime]:
    """A timestamp another controller wrote, or None when it is not one (decide() never raises on what it reads)."""
    try:
        return parse_time(value)
    except ValueError:
        return None


def attempt_outcome(label: str, entry: StageEntry, observed: Observed, spec: SafetyEvolutionSpec, ctx: Context) -> Optional[Outcome]:
    """The outcome of a running stage's attempt, or None while it runs normally (or its child is not listed yet)."""
    child = observed.children.get(entry.child)
    if child is None:
        return None  # not listed yet (just created) or deleted; it is recreated when missing for good
    state = kind_named(entry.kind).read_state(child)
    if state.phase == ChildPhase.SUCCEEDED:
        try:
            return Outcome(result=read_result(observed.messages.get(entry.child), StageKey.from_label(label)))
        except ValueError as exc:
            return Outcome(failure=f"MalformedResult: {str(exc)[:300]}")
    if state.phase == ChildPhase.FAILED:
        reason = (state.reason or "Failed") + (f": {state.message}" if state.message else "")
        # A Job past its deadline deletes its pending pods: the reason they never started lives on in entry.reason.
        last_pending = entry.reason.removeprefix(PENDING) if entry.reason.startswith(PENDING) else ""
        pod = observed.pod_reasons.get(entry.child) or last_pending
        code = observed.exit_codes.get(entry.child)
        user_error = code in USER_ERROR_EXIT_CODES or state.reason == "PodFailurePolicy"
        return Outcome(failure=reason + (f" (pod: {pod})" if pod else ""), retryable=not user_error,
                       disrupted=entry.child in observed.disrupted and not user_error)
    if suspended(child):
        return None  # queued (Kueue holds it suspended until it admits it): its deadline starts when it runs
    # A child admitted late by a queue starts its clock then, as the Job controller's own activeDeadlineSeconds does.
    started = max(filter(None, (parse_time(entry.startedAt), _time_or_none(start_time(child)))), default=ctx.now)
    running_for = (ctx.now - started).total_seconds()
    stuck = observed.stuck.get(entry.child, "")
    if stuck and running_for > spec.timeouts.startup:
        return Outcome(failure=f"{stuck} (not started after {spec.timeouts.startup}s)", delete=True)
    if running_for > spec.activeDeadlineSeconds + DEADLINE_GRACE_SECONDS:
        return Outcome(failure=f"DeadlineExceeded: running for {running_for:.0f}s, over spec.activeDeadlineSeconds", delete=True)
    return Outcome(stuck=stuck) if stuck else None


def fold_children(stages: dict[str, StageEntry], observed: Observed, spec: SafetyEvolutionSpec, ctx: Context
                  ) -> tuple[dict[str, StageEntry], list[Event], bool, list[tuple[str, str]]]:
    """(stages, events, progressed, children to delete): results, failures retried with backoff until spec.retries run out,
    pods that cannot start surfaced at once and failed after spec.timeouts.startup, children past their deadline ended.

    Only a success is progress: failed attempts and retries do not move lastProgressTime.
    """
    stages = dict(stages)
    events: list[Event] = []
    progressed = False
    delete: list[tuple[str, str]] = []
    for label, entry in stages.items():
        if entry.state != StageState.RUNNING:
            continue
        outcome = attempt_outcome(label, entry, observed, spec, ctx)
        if outcome is None:
            continue
        if outcome.result is not None:
            stages[label] = entry.model_copy(update=dict(state=StageState.SUCCEEDED, finishedAt=ctx.now_s, result=outcome.result, reason=""))
            events.append(Event("Normal", "StageSucceeded", f"{label} finished ({entry.child})"))
            progressed = True
            continue
        if not outcome.failure:  # stuck, within its grace period: say so once per distinct reason
            if entry.reason != f"{PENDING}{outcome.stuck}":
                stages[label] = entry.model_copy(update=dict(reason=f"{PENDING}{outcome.stuck}"))
                events.append(Event("Warning", "StagePending", f"{label}: {entry.child} cannot start: {outcome.stuck}; "
                                                               f"it fails after {spec.timeouts.startup}s"))
            continue
        if outcome.delete:
            delete.append((entry.kind, entry.child))
        reason = outcome.failure
        if outcome.disrupted and entry.attempts - entry.failures <= MAX_DISRUPTIONS and entry.attempts < MAX_ATTEMPTS:
            # A node drain or preemption is no fault of the stage (PyTorchJob and TrainJob have no podFailurePolicy).
            stages[label] = entry.model_copy(update=dict(state=StageState.WAITING, retryAt=ctx.now_s, reason=reason[:512], finishedAt=ctx.now_s))
            events.append(Event("Warning", "StageDisrupted", f"{label}: the cluster took {entry.child}'s pod away ({reason[:300]}); "
                                                             "retrying at once, without using a retry"))
            continue
        failures = entry.failures + 1
        update: dict[str, Any] = dict(failures=failures, reason=reason[:512], finishedAt=ctx.now_s)
        if failures <= spec.retries and outcome.retryable and entry.attempts < MAX_ATTEMPTS:
            retry_at = ctx.now + timedelta(seconds=_backoff(failures, ctx.settings))
            update.update(state=StageState.WAITING, retryAt=format_time(retry_at))
            events.append(Event("Warning", "StageFailed", f"{label} failed ({reason[:300]}); retry {failures}/{spec.retries} at {format_time(retry_at)}"))
        else:
            update.update(state=StageState.FAILED)
            why = "a user error that another attempt would repeat" if not outcome.retryable else f"{failures} times"
            events.append(Event("Warning", "StageFailed", f"{label} failed ({why}), giving up: {reason[:300]}"))
        stages[label] = entry.model_copy(update=update)
    return stages, events, progressed, delete


def unreferenced_running(children: dict[str, dict[str, Any]], stages: dict[str, StageEntry], cycle: int) -> list[tuple[str, str]]:
    """(kind, name) of this cycle's children still running that no running stage refers to: a retry whose predecessor's
    delete was lost, a stage failed by the operator. Ending them is repeated every reconcile until it takes (children of
    earlier cycles are retention's)."""
    referenced = {e.child for e in stages.values() if e.state == StageState.RUNNING}
    out = []
    for name, child in sorted(children.items()):
        kind = child.get("kind", "")
        meta = child.get("metadata") or {}
        if name in referenced or meta.get("deletionTimestamp") or kind not in CHILD_KINDS or (meta.get("labels") or {}).get(LABEL_CYCLE) != str(cycle):
            continue
        if not kind_named(kind).read_state(child).finished:
            out.append((kind, name))
    return out


# --- phase 3 -----------------------------------------------------------------------


def apply_spec_at_boundary(
    spec: SafetyEvolutionSpec, edited: bool, current: SafetyEvolutionSpec, stages: dict[str, StageEntry], done: Done, ctx: Context
) -> tuple[SafetyEvolutionSpec, bool, Done, list[Event]]:
    """(spec, applied, done, events): an edit takes effect only with nothing running and a round's first stage next.

    So a round never mixes two specs. Results of stages the new spec no longer has are set aside.
    """
    idle = not _in_state(stages, StageState.RUNNING, StageState.WAITING, StageState.FAILED)
    upcoming = next_stages(spec, done)
    if not edited or not idle or not all(k.stage == Stage.ATTACK for k in upcoming):
        return spec, False, done, []
    event = Event("Normal", "SpecApplied", f"generation {ctx.generation} takes effect from round {upcoming[0].round if upcoming else current.rounds}")
    graph = {key for key, _ in stage_graph(current)}
    return current, True, {k: v for k, v in done.items() if k in graph}, [event]


# --- phase 4 -----------------------------------------------------------------------


@dataclass
class Launched:
    stages: dict[str, StageEntry]
    create: list[StageObject] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    retry_wait: list[float] = field(default_factory=list)  # seconds until each pending retry
    progressed: bool = False


def launch_due(spec: SafetyEvolutionSpec, stages: dict[str, StageEntry], done: Done, observed: Observed, cycle: int, start_model: str, ctx: Context,
               prune: Sequence[str] = (), previous_records: Optional[str] = None) -> Launched:
    """Children for due retries (named by attempt), for children that vanished, and for the planner's next stages.

    A child that already exists under its deterministic name is adopted, not created again. Raises ValueError
    when the spec asks for a child that cannot be built (the shell reports it). The cycle's first stage carries
    ``prune``, the artifact folders of expired cycles it deletes before it runs (every attempt: deleting is idempotent).
    ``previous_records``: mode evaluate, the last cycle's evaluation records, which the evaluation pairs with.
    """
    out = Launched(stages=dict(stages))
    owner = Owner(name=ctx.name, namespace=ctx.namespace, uid=ctx.uid)
    root = cluster_root(spec.storage.mountPath, ctx.namespace, ctx.name, cycle)
    backend = training_backend(spec, ctx.settings.backend)
    first = stage_graph(spec)[0][0]

    def launch(key: StageKey, name: str, note: str, new_attempt: bool = True) -> None:
        pruning = list(prune) if key == first else []
        config = build_stage_config(ctx.name, spec, key, done, root, cache_dir=cluster_cache(spec.storage.mountPath), start_model=start_model,
                                    prune=pruning, previous_records=previous_records)
        if pruning:
            note += f"; it first deletes the artifacts of {len(pruning)} expired cycle{'s' if len(pruning) != 1 else ''}"
        problems = _policy_problems(spec, ctx.settings)
        if problems:  # the policy may have changed since this spec was accepted
            raise SpecProblem("; ".join(problems))
        try:
            obj = build_stage_object(owner, spec, key, config, name=name, image=spec.image or ctx.settings.image,
                                     pvc=spec.storage.pvc or ctx.settings.pvc, backend=backend, cycle=cycle,
                                     pod=stage_pod(spec, ctx.settings.pod_defaults))
        except ValueError as exc:
            raise SpecProblem(str(exc)) from None
        entry = out.stages.get(key.label) or StageEntry(state=StageState.RUNNING)
        out.stages[key.label] = entry.model_copy(update=dict(
            state=StageState.RUNNING, child=name, kind=obj.kind, startedAt=ctx.now_s, retryAt=None, attempts=entry.attempts + int(new_attempt),
        ))
        if name in observed.children:
            out.events.append(Event("Normal", "StageAdopted", f"{key.label}: adopted existing {obj.kind} {name}"))
        else:
            out.create.append(obj)
            out.events.append(Event("Normal", "StageStarted", f"{key.label}: created {obj.kind} {name}{note}"))

    for label in _in_state(out.stages, StageState.WAITING):
        retry_at = parse_time(out.stages[label].retryAt) or ctx.now
        if retry_at <= ctx.now:
            key = StageKey.from_label(label)
            attempt = out.stages[label].attempts
            # Named by attempt, so retries after a spec edit never reuse an old child's name.
            launch(key, child_name(ctx.name, key, cycle, attempt), f" (retry {attempt})")
        else:
            out.retry_wait.append((retry_at - ctx.now).total_seconds())
    for label in _in_state(out.stages, StageState.RUNNING):
        entry = out.stages[label]
        # Launched in an earlier reconcile (so not merely unlisted yet) and gone: recreate it under the same name.
        if entry.child not in observed.children and entry.startedAt != ctx.now_s and not any(o.name == entry.child for o in out.create):
            launch(StageKey.from_label(label), entry.child, " (recreated: it was missing)", new_attempt=False)
    running = {StageKey.from_label(label) for label in _in_state(out.stages, StageState.RUNNING, StageState.WAITING)}
    for key in next_stages(spec, done, running):
        launch(key, child_name(ctx.name, key, cycle), "")
        out.progressed = True
    return out


# --- phase 5 -----------------------------------------------------------------------


def compute_conditions(
    conditions: list[Condition], spec: SafetyEvolutionSpec, stages: dict[str, StageEntry], summaries: list[RoundStatus],
    complete: bool, suspended: bool, promoted: str, progressing_at: Optional[StageKey], ctx: Context,
    history: Sequence[HistoryEntry] = (),
) -> list[Condition]:
    """Degraded, SafetyRegressed, Progressing and Ready from the stages and the latest round's gate.

    Mode evaluate: SafetyRegressed compares the latest cycle with the one before (``history``), and ``promoted`` is the
    model being re-checked.
    """
    g, now = ctx.generation, ctx.now_s
    failed = _in_state(stages, StageState.FAILED)
    if failed:
        entry = stages[failed[0]]
        message = f"stage {failed[0]} failed {'once' if entry.failures == 1 else f'{entry.failures} times'}: {entry.reason}"
        conditions = set_condition(conditions, ConditionType.DEGRADED, True, "StageFailed", message, now, g)
    else:
        conditions = set_condition(conditions, ConditionType.DEGRADED, False, "AsExpected", "", now, g)
    latest = summaries[-1] if summaries else None
    if spec.evaluate_only:
        regressed, reason, message = regression_condition(latest, history, promoted)
        conditions = set_condition(conditions, ConditionType.SAFETY_REGRESSED, regressed, reason, message, now, g)
    elif latest and latest.regressed and latest.regression:
        message = f"round {latest.round} is less safe than round {latest.round - 1}: {latest.regression.text()}"
        conditions = set_condition(conditions, ConditionType.SAFETY_REGRESSED, True, "SignificantRegression", message, now, g)
    else:
        reason = "NoSignificantRegression" if latest and latest.regression else "NoPairedRound"
        conditions = set_condition(conditions, ConditionType.SAFETY_REGRESSED, False, reason, "", now, g)
    if suspended:
        conditions = set_condition(conditions, ConditionType.PROGRESSING, False, "Suspended", "spec.suspend is true", now, g)
    elif failed:
        conditions = set_condition(conditions, ConditionType.PROGRESSING, False, "StageFailed", "", now, g)
    elif _in_state(stages, StageState.RUNNING, StageState.WAITING):
        conditions = set_condition(conditions, ConditionType.PROGRESSING, True, "StageRunning", progressing_at.label if progressing_at else "", now, g)
    else:
        conditions = set_condition(conditions, ConditionType.PROGRESSING, False, "Complete" if complete else "Idle", "", now, g)
    ready = complete and not failed
    reason = "Complete" if ready else ("StageFailed" if failed else "InProgress")
    passed = [s.round for s in summaries if s.gate and s.gate.passed]
    outcome = f"round {passed[-1]} passed its gates; promoted {promoted}" if passed else f"no round passed its gates; kept {promoted}"
    done_message = ready_message(latest, promoted) if spec.evaluate_only else f"{spec.rounds} rounds done; {outcome}"
    return set_condition(conditions, ConditionType.READY, ready, reason, done_message if ready else "", now, g)


# --- phase 6 -----------------------------------------------------------------------


def schedule_next_cycle(status: EvolutionStatus, spec: SafetyEvolutionSpec, ctx: Context) -> tuple[EvolutionStatus, list[Event], Optional[float]]:
    """On ``spec.schedule``, once the cycle is complete: when the next is due, and at that time a new cycle from the promoted model.

    Mode evaluate: the finished cycle is in the history already, and its round stays in ``rounds`` until the new
    cycle's evaluation replaces it (so the figures, SafetyRegressed and the metrics do not drop out meanwhile).
    """
    finished = max((parse_time(e.finishedAt) or ctx.now for e in status.stages.values()), default=ctx.now)
    due = croniter(spec.schedule, finished).get_next(datetime)
    if due > ctx.now:
        return status.model_copy(update=dict(nextScheduleTime=format_time(due))), [], (due - ctx.now).total_seconds()
    entry = HistoryEntry(cycle=status.cycle, promotedModel=status.promotedModel, finishedAt=format_time(finished),
                         rounds=[HistoryRound(round=r.round, directASR=_rate(r.directASR), adversarialASR=_rate(r.adversarialASR)) for r in status.rounds])
    event = Event("Normal", "CycleStarted", f"cycle {status.cycle + 1} re-checks {status.promotedModel} on schedule {spec.schedule}")
    keep = spec.retention.history
    history = status.history[-keep:] if spec.evaluate_only else [*status.history, entry][-keep:]
    status = status.model_copy(update=dict(
        history=history, cycle=status.cycle + 1, startModel=status.promotedModel,
        stages={}, rounds=carried_rounds(status.rounds) if spec.evaluate_only else [], activeSpec=None, nextScheduleTime=None,
    ))
    return status, [event], 1.0


# --- the step ----------------------------------------------------------------------


def decide(body: dict[str, Any], observed: Observed, now: datetime, settings: OperatorSettings) -> Decision:
    """One reconcile step for a SafetyEvolution ``body`` (metadata, spec, status). Never raises.

    A spec the validators accept but the builders cannot honour degrades the evolution as an invalid spec;
    anything else unexpected degrades it with reason ReconcileError, so the operator stays up either way.
    """
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 1)
    try:
        return _decide(body, observed, now, settings)
    except SpecProblem as exc:
        return _degraded(body, [f"invalid spec: {exc}"], now, generation, "InvalidSpec")
    except Exception as exc:  # a bug: report it on the object rather than crash-loop
        return _degraded(body, [f"reconcile error: {type(exc).__name__}: {exc}"], now, generation, "ReconcileError")


class SpecProblem(ValueError):
    """The spec validates but cannot be carried out (e.g. workers with the job backend)."""


def _policy_problems(spec: SafetyEvolutionSpec, settings: OperatorSettings) -> list[str]:
    return policy_problems(spec, default_image=settings.image, allowed_images=settings.allowed_images,
                           max_gpus_per_stage=settings.max_gpus_per_stage)


def _degraded(body: dict[str, Any], problems: list[str], now: datetime, generation: int, reason: str) -> Decision:
    """Degraded with ``reason``; a Warning Event only when the message is new (one per distinct problem, not per reconcile)."""
    try:
        status = parse_status(body.get("status"))
    except ValidationError:
        status = EvolutionStatus()
    degraded = degraded_status(status, generation, reason, "; ".join(problems), format_time(now))
    return Decision(degraded, events=[] if status.message == degraded.message else [Event("Warning", reason, degraded.message or "")])


def _decide(body: dict[str, Any], observed: Observed, now: datetime, settings: OperatorSettings) -> Decision:
    meta = body.get("metadata") or {}
    ctx = Context(name=meta.get("name", ""), namespace=meta.get("namespace", "default"), uid=meta.get("uid", ""),
                  generation=int(meta.get("generation") or 1), now=now, settings=settings)
    status = parse_status(body.get("status"))
    try:
        current = SafetyEvolution.model_validate({"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": body.get("spec")})
    except ValidationError as exc:
        return _degraded(body, ["invalid spec: " + "; ".join(validation_problems(exc))], now, ctx.generation, "InvalidSpec")
    problems = _policy_problems(current.spec, settings)
    if problems:  # the operator's policy (chart values policy.*): the user must change the spec
        return _degraded(body, ["invalid spec: " + "; ".join(problems)], now, ctx.generation, "InvalidSpec")

    if status.activeSpec is None:
        status = status.model_copy(update=dict(activeSpec=current.spec.model_dump(mode="json"), activeGeneration=ctx.generation))
    spec = SafetyEvolutionSpec.model_validate(status.activeSpec)
    edited = status.activeGeneration != ctx.generation

    stages, events, applies = retry_after_edit(status.stages, edited, ctx)
    if applies:
        spec, edited = current.spec, False
    ignored = current.spec.ignored_settings()
    if ignored and status.observedGeneration != ctx.generation:  # once per generation, not per reconcile
        events.append(Event("Normal", "SettingsIgnored", ignored_message(ignored, current.spec.evaluate_only)))
    # The first cycle starts from spec.target.model until round 1 has run, so fixing a typo there takes effect;
    # a scheduled cycle starts from the model the last one promoted. A re-check (mode evaluate) always checks spec.target.model.
    started = any(StageKey.from_label(label).round >= 1 for label in _in_state(stages, StageState.SUCCEEDED))
    start_model = status.startModel if status.cycle > 0 or (started and status.startModel) else spec.target.model
    checked = spec.target.label  # the model this cycle re-checks (mode evaluate), named before an edit may apply below
    if spec.evaluate_only:
        start_model = spec.target.model  # None for a served target: its stage configs take spec.target as it is
    stages, folded, progressed, delete = fold_children(stages, observed, spec, ctx)
    events += folded
    status = status.model_copy(update=dict(stages=stages))
    finished = status.done()
    spec, applied, done, applied_events = apply_spec_at_boundary(spec, edited, current.spec, stages, finished, ctx)
    events += applied_events

    # Retention is no input of a round, so an edit of it applies at once. The promoted model and the start model
    # are never pruned, nor the child that trained them.
    retention = current.spec.retention
    cycle_root = partial(cluster_root, spec.storage.mountPath, ctx.namespace, ctx.name)
    # Mode evaluate pairs this cycle's evaluation with the last cycle's records: they stay however old.
    earlier_records = previous_records(status.history, status.cycle) if spec.evaluate_only else None
    protected = [p for p in (status.promotedModel, start_model, earlier_records) if p]
    expired = [c for c in children_to_prune(observed.children, status.cycle, retention.children, cycle_root, protected) if c not in delete]
    if expired:
        delete += expired
        events.append(Event("Normal", "Pruned", pruned_message(observed.children, expired, retention.children)))
    prune_roots = cycle_roots_to_prune(status.cycle, retention.checkpoints, cycle_root, protected,
                                       released=[h.promotedModel for h in status.history if h.promotedModel])
    active_generation = ctx.generation if (applied or not edited) else status.activeGeneration

    suspended = spec.suspend or current.spec.suspend
    create: list[StageObject] = []
    retry_wait: list[float] = []
    if not suspended and not _in_state(stages, StageState.FAILED):
        launched = launch_due(spec, stages, done, observed, status.cycle, start_model, ctx, prune=prune_roots, previous_records=earlier_records)
        stages, create, retry_wait = launched.stages, launched.create, launched.retry_wait
        events += launched.events
        progressed = progressed or launched.progressed
    orphans = [c for c in unreferenced_running(observed.children, stages, status.cycle) if c not in delete]
    if orphans:
        delete += orphans
        events.append(Event("Normal", "ChildEnded", "ended " + ", ".join(f"{kind} {name}" for kind, name in orphans)
                            + ": no stage waits on them any more"))

    # Old rounds keep their figures in rounds[] but drop their stage results, so the status stays far below
    # etcd's object limit whatever spec.rounds is; a compacted round's summary is carried over from the last status.
    summaries = round_summaries(spec, done, status.rounds)
    if spec.evaluate_only:  # until this cycle's evaluation lands, the last cycle's stays (recheck.carried_rounds)
        summaries = [s.model_copy(update=dict(cycle=status.cycle)) for s in summaries] or carried_rounds(status.rounds)
    stages = compact_stages(stages, rounds_in_use(spec, finished))
    promoted = promoted_model(summaries, start_model)
    if spec.evaluate_only:  # nothing is promoted: the model re-checked is the one to deploy (a served one by its label)
        promoted = checked
    complete = is_complete(spec, done)
    failed = bool(_in_state(stages, StageState.FAILED))
    stage_now = current_stage(spec, done)
    history = status.history
    if spec.evaluate_only and complete and not failed and summaries and summaries[-1].cycle == status.cycle:
        finished_at = max((e.finishedAt for e in stages.values() if e.finishedAt), default=ctx.now_s)
        history = record_cycle(history, cycle_entry(summaries[-1], status.cycle, promoted, finished_at), current.spec.retention.history)
    conditions = compute_conditions(status.conditions, spec, stages, summaries, complete, suspended, promoted, stage_now, ctx, history=history)
    status = status.model_copy(update=dict(
        observedGeneration=ctx.generation, activeGeneration=active_generation, activeSpec=spec.model_dump(mode="json"), history=history,
        startModel=start_model, stages=stages, round=stage_now.round if stage_now else (0 if spec.evaluate_only else spec.rounds),
        stage=str(stage_now.stage) if stage_now else "Done",
        directASR=_rate(summaries[-1].directASR) if summaries else None, adversarialASR=_rate(summaries[-1].adversarialASR) if summaries else None,
        promotedModel=promoted, rounds=trim_breakdowns(summaries), conditions=conditions,
        phase=Phase.SUSPENDED if suspended else Phase.DEGRADED if failed else Phase.SUCCEEDED if complete else Phase.RUNNING,
        message=next((c.message for c in conditions if c.type == ConditionType.DEGRADED), "") if failed else "",
    ))
    if progressed or status.lastProgressTime is None:
        status = status.model_copy(update=dict(lastProgressTime=ctx.now_s))

    requeue = min(retry_wait) if retry_wait else None
    if complete and not failed and spec.schedule and not suspended:
        status, cycle_events, requeue_cycle = schedule_next_cycle(status, spec, ctx)
        events += cycle_events
        requeue = min(requeue or 1e9, requeue_cycle) if not cycle_events else requeue_cycle
    return Decision(status=status, create=create, delete=delete, events=events, requeue_after=requeue)


__all__ = [
    "Decision", "Event", "Observed", "apply_spec_at_boundary", "compute_conditions", "decide", "fold_children",
    "degraded_status", "launch_due", "read_result", "retry_after_edit", "schedule_next_cycle", "unreferenced_running",
]
