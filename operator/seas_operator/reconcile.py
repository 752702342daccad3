"""The pure reconcile step: (object, observed children, now) -> (status, children to create, events).

Level-triggered: everything is recomputed from the stored status and what
exists in the cluster. Child names are deterministic, so a restarted operator
adopts a child it created before it could record it. The kopf handlers in
``handlers.py`` are a thin shell around :func:`decide`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional

from pydantic import ValidationError

from .api import API_VERSION, KIND, SafetyEvolution, SafetyEvolutionSpec
from .builders import Owner, StageObject, build_stage_object, training_backend
from .children import child_state
from .conditions import format_time, ordered, parse_time, set_condition
from .loading import validation_problems
from .planner import StageKey, current_stage, is_complete, next_stages, stage_graph
from .rounds import promoted_model, round_summaries
from .stage_configs import build_stage_config


@dataclass(frozen=True)
class Defaults:
    """Operator-wide settings (from its environment)."""

    image: str = "ghcr.io/seas-dev/seas-runtime:0.1.0"
    pvc: str = "seas-artifacts"
    backend: str = "pytorchjob"
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 600.0


@dataclass
class Observed:
    """What the shell read from the API for this evolution."""

    children: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Job/PyTorchJob/TrainJob
    messages: dict[str, Optional[str]] = field(default_factory=dict)  # child name -> termination message
    pod_reasons: dict[str, str] = field(default_factory=dict)  # child name -> why its pod failed


@dataclass
class Decision:
    status: dict[str, Any]
    create: list[StageObject] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (Normal|Warning, reason, message)
    requeue_after: Optional[float] = None


def _key(label: str) -> StageKey:
    round_part, stage = label.split("/", 1)
    return StageKey(int(round_part[1:]), stage)


def _backoff(failures: int, defaults: Defaults) -> float:
    return min(defaults.retry_max_seconds, defaults.retry_base_seconds * 2 ** max(0, failures - 1))


def _parse_result(message: Optional[str]):
    from seas_runtime.contract import parse_stage_result  # pydantic only, no torch

    if not message:
        raise ValueError("the stage left no result (empty termination message)")
    return parse_stage_result(message)


def invalid_spec_status(status: dict[str, Any], generation: int, problems: list[str], now: str) -> dict[str, Any]:
    """Status for a spec that does not validate: Degraded with every problem in the message."""
    message = "invalid spec: " + "; ".join(problems)
    conditions = list(status.get("conditions") or [])
    conditions = set_condition(conditions, "Degraded", True, "InvalidSpec", message, now, generation)
    conditions = set_condition(conditions, "Ready", False, "InvalidSpec", message, now, generation)
    conditions = set_condition(conditions, "Progressing", False, "InvalidSpec", "fix the spec to continue", now, generation)
    return {**status, "observedGeneration": generation, "phase": "Failed" if not status.get("stages") else status.get("phase", "Failed"),
            "message": message[:1024], "conditions": ordered(conditions)}


def decide(body: dict[str, Any], observed: Observed, now: datetime, defaults: Defaults) -> Decision:
    """One reconcile step for a SafetyEvolution ``body`` (metadata, spec, status)."""
    meta = body.get("metadata") or {}
    name, namespace, uid = meta.get("name", ""), meta.get("namespace", "default"), meta.get("uid", "")
    generation = int(meta.get("generation") or 1)
    status: dict[str, Any] = copy.deepcopy(body.get("status") or {})
    status.pop("kopf", None)
    now_s = format_time(now)
    events: list[tuple[str, str, str]] = []

    try:
        current = SafetyEvolution.model_validate({"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": body.get("spec")})
    except ValidationError as exc:
        invalid = invalid_spec_status(status, generation, validation_problems(exc), now_s)
        if status.get("message") != invalid["message"]:  # one Event per distinct problem, not per reconcile
            events.append(("Warning", "InvalidSpec", invalid["message"]))
        return Decision(invalid, events=events)

    stages: dict[str, dict[str, Any]] = status.get("stages") or {}
    active_doc = status.get("activeSpec")
    if active_doc is None:
        active_doc = current.spec.model_dump(mode="json")
        status["activeGeneration"] = generation
    spec = SafetyEvolutionSpec.model_validate(active_doc)
    cycle = int(status.get("cycle") or 0)
    start_model = status.get("startModel") or spec.target.model
    owner = Owner(name=name, namespace=namespace, uid=uid)
    create: list[StageObject] = []
    progressed = False

    # 0. An edit after a stage ran out of retries (fixing a Secret, resources or backend) retries it
    #    at once with the new spec and a fresh retry budget.
    exhausted = [label for label, e in stages.items() if e.get("state") == "failed"]
    if exhausted and status.get("activeGeneration") != generation:
        spec = current.spec
        status["activeGeneration"] = generation
        for label in exhausted:
            stages[label].update(state="waiting", failures=0, retryAt=now_s)
            events.append(("Normal", "StageRetrying", f"{label}: retrying after the spec changed (generation {generation})"))

    # 1. Fold in what the children report.
    for label, entry in stages.items():
        if entry.get("state") != "running":
            continue
        child = observed.children.get(entry["child"])
        if child is None:
            continue  # not listed yet (just created) or deleted; it is recreated below when missing for good
        state = child_state(entry["kind"], child)
        if state.phase == "running":
            continue
        reason = ""
        if state.phase == "succeeded":
            try:
                result = _parse_result(observed.messages.get(entry["child"]))
            except (ValueError, ValidationError) as exc:
                reason = f"MalformedResult: {str(exc).splitlines()[0][:300]}"
            else:
                entry.update(state="succeeded", finishedAt=now_s, result=json.loads(result.model_dump_json()), reason="")
                events.append(("Normal", "StageSucceeded", f"{label} finished ({entry['child']})"))
                progressed = True
                continue
        else:
            reason = (state.reason or "Failed") + (f": {state.message}" if state.message else "")
            pod = observed.pod_reasons.get(entry["child"])
            if pod:
                reason += f" (pod: {pod})"
        entry["failures"] = int(entry.get("failures") or 0) + 1
        entry["reason"] = reason[:512]
        entry["finishedAt"] = now_s
        progressed = True
        if entry["failures"] <= spec.retries:
            retry_at = now + timedelta(seconds=_backoff(entry["failures"], defaults))
            entry.update(state="waiting", retryAt=format_time(retry_at))
            events.append(("Warning", "StageFailed", f"{label} failed ({reason[:300]}); retry {entry['failures']}/{spec.retries} at {format_time(retry_at)}"))
        else:
            entry["state"] = "failed"
            events.append(("Warning", "StageFailed", f"{label} failed {entry['failures']} times, giving up: {reason[:300]}"))

    done = {_key(label): _as_result(entry["result"]) for label, entry in stages.items() if entry.get("state") == "succeeded"}

    # A spec change takes effect at the next round boundary: nothing running and the next
    # stage is a round's first (or the cycle is over), so a round never mixes two specs.
    idle = not any(e.get("state") in ("running", "waiting", "failed") for e in stages.values())
    upcoming = next_stages(spec, done)
    if status.get("activeGeneration") != generation and idle and all(k.stage == "attack" for k in upcoming):
        spec = current.spec
        status["activeGeneration"] = generation
        events.append(("Normal", "SpecApplied", f"generation {generation} takes effect from round {upcoming[0].round if upcoming else spec.rounds}"))
        done = {k: v for k, v in done.items() if any(k == key for key, _ in stage_graph(spec))}
    status["activeSpec"] = spec.model_dump(mode="json")
    root = f"{spec.storage.mountPath.rstrip('/')}/{namespace}/{name}/c{cycle}"

    def launch(key: StageKey, child_name: str, attempt_note: str, new_attempt: bool = True) -> None:
        config = build_stage_config(name, spec, key, done, root, cache_dir=f"{spec.storage.mountPath.rstrip('/')}/.cache", start_model=start_model)
        backend = training_backend(spec, defaults.backend)
        # A ValueError here (a spec the builder cannot honour) degrades the evolution in the shell.
        obj = build_stage_object(owner, spec, key, config, name=child_name, image=spec.image or defaults.image,
                                 pvc=spec.storage.pvc or defaults.pvc, backend=backend, cycle=cycle)
        entry = stages.setdefault(key.label, {"attempts": 0, "failures": 0})
        entry.update(state="running", child=child_name, kind=obj.kind, startedAt=now_s, reason=entry.get("reason", ""))
        entry.pop("retryAt", None)
        entry["attempts"] = int(entry.get("attempts") or 0) + int(new_attempt)
        if child_name in observed.children:
            events.append(("Normal", "StageAdopted", f"{key.label}: adopted existing {obj.kind} {child_name}"))
        else:
            create.append(obj)
            events.append(("Normal", "StageStarted", f"{key.label}: created {obj.kind} {child_name}{attempt_note}"))

    failed = [label for label, e in stages.items() if e.get("state") == "failed"]
    retry_wait: list[float] = []
    if not spec.suspend and not current.spec.suspend and not failed:
        # 2. Retries whose backoff has passed get a new, deterministic child name.
        for label, entry in stages.items():
            if entry.get("state") != "waiting":
                continue
            retry_at = parse_time(entry.get("retryAt")) or now
            if retry_at <= now:
                key = _key(label)
                # Named by attempt, so retries after a spec edit never reuse an old child's name.
                launch(key, f"{key.child_name(name, cycle)}-retry{entry['attempts']}", f" (retry {entry['attempts']})")
                progressed = True
            else:
                retry_wait.append((retry_at - now).total_seconds())
        # 3. Children that vanished while running are recreated under the same name.
        for label, entry in stages.items():
            if entry.get("state") == "running" and entry["child"] not in observed.children and not any(o.name == entry["child"] for o in create):
                if entry.get("startedAt") != now_s:  # launched in an earlier reconcile, so not just unlisted yet
                    launch(_key(label), entry["child"], " (recreated: it was missing)", new_attempt=False)
        # 4. Whatever the planner says is next.
        running = {_key(label) for label, e in stages.items() if e.get("state") in ("running", "waiting")}
        for key in next_stages(spec, done, running):
            launch(key, key.child_name(name, cycle), "")
            progressed = True

    # 5. Figures, gates and conditions.
    summaries = round_summaries(spec, done)
    promoted = promoted_model(summaries, start_model)
    complete = is_complete(spec, done)
    status_running = any(e.get("state") in ("running", "waiting") for e in stages.values())
    conditions = list(status.get("conditions") or [])
    g = generation
    if failed:
        entry = stages[failed[0]]
        message = f"stage {failed[0]} failed {entry.get('failures')} times: {entry.get('reason', '')}"
        conditions = set_condition(conditions, "Degraded", True, "StageFailed", message, now_s, g)
    else:
        conditions = set_condition(conditions, "Degraded", False, "AsExpected", "", now_s, g)
    latest = summaries[-1] if summaries else None
    if latest and latest["gate"] and not latest["gate"]["passed"]:
        conditions = set_condition(conditions, "SafetyRegressed", True, "GateFailed", f"round {latest['round']}: " + "; ".join(latest["gate"]["failures"]), now_s, g)
    else:
        conditions = set_condition(conditions, "SafetyRegressed", False, "GatesPassed" if latest and latest["gate"] else "NoGatedRound", "", now_s, g)
    suspended = spec.suspend or current.spec.suspend
    if suspended:
        conditions = set_condition(conditions, "Progressing", False, "Suspended", "spec.suspend is true", now_s, g)
    elif failed:
        conditions = set_condition(conditions, "Progressing", False, "StageFailed", "", now_s, g)
    elif status_running:
        stage_key = current_stage(spec, done)
        conditions = set_condition(conditions, "Progressing", True, "StageRunning", f"{stage_key.label if stage_key else ''}", now_s, g)
    else:
        conditions = set_condition(conditions, "Progressing", False, "Complete" if complete else "Idle", "", now_s, g)
    ready = complete and not failed
    conditions = set_condition(conditions, "Ready", ready, "Complete" if ready else ("StageFailed" if failed else "InProgress"),
                               f"{spec.rounds} rounds done; promoted {promoted}" if ready else "", now_s, g)

    stage_now = current_stage(spec, done)
    status.update(
        observedGeneration=g, cycle=cycle, startModel=start_model, stages=stages,
        round=stage_now.round if stage_now else spec.rounds, stage=stage_now.stage if stage_now else "Done",
        targetASR=latest["target_asr"] if latest else None, promotedModel=promoted,
        rounds=[_status_round(s) for s in summaries], conditions=ordered(conditions),
        phase="Suspended" if suspended else "Degraded" if failed else "Succeeded" if complete else "Running",
        message="" if not failed else conditions_message(conditions, "Degraded"),
    )
    if progressed or "lastProgressTime" not in status:
        status["lastProgressTime"] = now_s

    requeue = min(retry_wait) if retry_wait else None
    # 6. Recurrence: a new cycle from the promoted model on schedule.
    if complete and not failed and spec.schedule and not suspended:
        from croniter import croniter

        finished = max((parse_time(e.get("finishedAt")) or now for e in stages.values()), default=now)
        due = croniter(spec.schedule, finished).get_next(datetime)
        status["nextScheduleTime"] = format_time(due)
        if due <= now:
            history = list(status.get("history") or [])[-9:]
            history.append({"cycle": cycle, "promotedModel": promoted, "finishedAt": format_time(finished),
                            "rounds": [{"round": s["round"], "targetASR": s["target_asr"]} for s in summaries]})
            status.update(history=history, cycle=cycle + 1, startModel=promoted, stages={}, rounds=[], activeSpec=None)
            status.pop("nextScheduleTime", None)
            events.append(("Normal", "CycleStarted", f"cycle {cycle + 1} re-checks {promoted} on schedule {spec.schedule}"))
            requeue = 1.0
        else:
            requeue = min(requeue or 1e9, (due - now).total_seconds())
    return Decision(status=status, create=create, events=events, requeue_after=requeue)


def conditions_message(conditions: list[dict[str, Any]], type_: str) -> str:
    return next((c.get("message", "") for c in conditions if c.get("type") == type_), "")


def _as_result(data: dict[str, Any]):
    from seas_runtime.contract import parse_stage_result

    return parse_stage_result(json.dumps(data))


def _status_round(summary: dict[str, Any]) -> dict[str, Any]:
    """A round's figures in status (camelCase, as Kubernetes status fields are)."""
    return {
        "round": summary["round"],
        "targetASR": summary["target_asr"],
        "redteamASR": summary["redteam_asr"],
        "benignRefusalRate": summary["benign_refusal_rate"],
        "judgeErrorRate": summary["judge_error_rate"],
        "qaAccuracy": summary["knowledge"]["accuracy"],
        "qaPerplexity": summary["knowledge"]["perplexity"],
        "qaEntropy": summary["knowledge"]["entropy"],
        "qaAnswerProbability": summary["knowledge"]["probability"],
        "accuracyDrop": summary["accuracy_drop"],
        "byCategory": summary["by_category"],
        "byStyle": summary["by_style"],
        "pairs": summary["pairs"],
        "gate": summary["gate"],
        "judge": summary["judge"],
        "seconds": summary["seconds"],
        "targetModel": summary.get("target_model"),
        "records": summary["records"],
    }


__all__ = ["Defaults", "Observed", "Decision", "decide"]
