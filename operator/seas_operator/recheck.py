"""Evaluate-only cycles (``spec.mode: evaluate``): the pure decisions of re-checking a model on a schedule.

A cycle evaluates ``spec.target.model`` as it is (and attacks it, when
``spec.evaluateOnly.attack`` asks). Its evaluation pairs its verdicts with the
last cycle's records, prompt by prompt: the exact McNemar test with Newcombe's
interval (``seas_runtime.stats.paired_change``, run by the evaluate stage), the
same test that decides ``SafetyRegressed`` between training rounds. So a rise
counts as a regression only when it is significant; its interval is shown
either way.

Each finished cycle becomes one ``HistoryEntry`` (its figures k/n with their
intervals, the gate, the paired change), the newest ``spec.retention.history``
kept. While the next cycle runs, the last cycle's round stays in
``status.rounds``, so the condition and the metrics hold steady between
re-checks instead of dropping out for the hours an evaluation takes.
"""

from __future__ import annotations

from typing import Optional, Sequence

from seas_runtime.stats import Rate

from .status import CYCLE_FIGURES, CycleFigures, HistoryEntry, HistoryRound, RoundStatus


def _rate(figure: Optional[Rate]) -> Optional[float]:
    return figure.rate if figure is not None else None


def _previous(history: Sequence[HistoryEntry], cycle: int) -> Optional[HistoryEntry]:
    return next((h for h in reversed(history) if h.cycle < cycle and h.evaluation is not None and h.evaluation.records), None)


def previous_records(history: Sequence[HistoryEntry], cycle: int) -> Optional[str]:
    """The evaluation records of the latest evaluated cycle before ``cycle``: this cycle's evaluation pairs with them."""
    previous = _previous(history, cycle)
    return previous.evaluation.records if previous is not None and previous.evaluation is not None else None


def cycle_entry(summary: RoundStatus, cycle: int, model: str, finished_at: Optional[str]) -> HistoryEntry:
    """The history entry of a finished evaluate-only cycle, from its round 0 (``status.CYCLE_FIGURES`` of it)."""
    evaluation = CycleFigures.model_validate(summary.model_dump(include=set(CYCLE_FIGURES)))
    return HistoryEntry(cycle=cycle, promotedModel=model, model=model, finishedAt=finished_at, evaluation=evaluation,
                        rounds=[HistoryRound(round=0, directASR=_rate(summary.directASR), adversarialASR=_rate(summary.adversarialASR))])


def record_cycle(history: Sequence[HistoryEntry], entry: HistoryEntry, keep: int) -> list[HistoryEntry]:
    """``history`` with ``entry`` in place of any entry of its cycle, by cycle, the newest ``keep`` kept."""
    entries = sorted([h for h in history if h.cycle != entry.cycle] + [entry], key=lambda h: h.cycle)
    return entries[-keep:]


def carried_rounds(rounds: Sequence[RoundStatus]) -> list[RoundStatus]:
    """The last cycle's evaluation, kept in ``status.rounds`` while the running cycle has none of its own yet."""
    return [r for r in rounds[-1:] if r.cycle is not None]


def regression_condition(latest: Optional[RoundStatus], history: Sequence[HistoryEntry], model: str) -> tuple[bool, str, str]:
    """SafetyRegressed in mode evaluate as (status, reason, message): True only for a significant paired rise against the last cycle."""
    if latest is None or latest.regression is None:
        return False, "NoPreviousCycle", "nothing to compare with yet: the first re-check is the reference of the next"
    previous = _previous(history, latest.cycle if latest.cycle is not None else 0)
    than = f"cycle {previous.cycle}" if previous is not None else "the cycle before"
    text = latest.regression.text()
    if latest.regressed:
        return True, "SignificantRegression", f"cycle {latest.cycle} of {model} is less safe than {than}: {text}"
    return False, "NoSignificantRegression", f"cycle {latest.cycle} of {model} against {than}: {text}"


def ready_message(latest: Optional[RoundStatus], model: str) -> str:
    """The Ready condition's message once a re-check finished: which model, and whether its gates held."""
    if latest is None:
        return ""
    gate = latest.gate
    outcome = "passed its gates" if gate is None or gate.passed else "failed its gates: " + "; ".join(gate.failures)
    return f"cycle {latest.cycle} evaluated {model}: it {outcome}"


def ignored_message(ignored: Sequence[str], evaluate_only: bool) -> str:
    """The SettingsIgnored Event (and ``seas validate`` note): which fields the mode does not read."""
    fields = ", ".join(ignored)
    if evaluate_only:
        return f"{fields} {'is' if len(ignored) == 1 else 'are'} ignored: spec.mode is evaluate, so nothing is trained"
    return f"{fields} is ignored: spec.mode is train"


__all__ = ["carried_rounds", "cycle_entry", "ignored_message", "previous_records", "ready_message", "record_cycle", "regression_condition"]
