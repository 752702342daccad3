"""Child names: deterministic, and bounded at validation for every cycle, round, attempt and worker the spec allows."""

from __future__ import annotations

import pytest

from seas_operator.api import SafetyEvolution
from seas_operator.loading import SpecError, parse_evolution
from seas_operator.names import CYCLE_LABELS, MAX_ATTEMPTS, MAX_LABEL, child_name, longest_names
from seas_runtime.contract import Stage, StageKey


def evolution(name: str, **spec) -> dict:
    return {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": name},
            "spec": {"rounds": 3, "target": {"model": "m"}, "redTeam": {"model": "m"}, **spec}}


@pytest.mark.parametrize("cycle, label", [(0, None), (1, "c1"), (999, "c999"), (1000, "c1"), (123_456, "c579")])
def test_cycles_fold_into_a_bounded_label(cycle, label):
    name = child_name("demo", StageKey(1, Stage.ATTACK), cycle)
    assert name == ("demo-r1-attack" if label is None else f"demo-{label}-r1-attack")


def test_the_largest_spec_limits_with_the_longest_allowed_name_fit_or_are_refused():
    # The API allows 100 rounds, 20 retries and 256 workers: a 24-character name cannot have all of them.
    with pytest.raises(SpecError) as refused:
        parse_evolution(evolution("a" * 24, rounds=100, retries=20, training={"workers": 256}))
    (problem,) = refused.value.problems
    assert "metadata.name" in problem and "too long" in problem and "shorten the name" in problem
    # Defaults (3 rounds, 2 retries, no workers) leave room for the longest name allowed.
    ok = parse_evolution(evolution("a" * 24))
    assert all(len(n) <= MAX_LABEL for n in longest_names(ok.metadata.name, 3, 0, True))


@pytest.mark.parametrize("name, rounds, retries, workers, backend", [
    ("a" * 24, 3, 2, 0, None), ("a" * 16, 100, 20, 9, "pytorchjob"), ("a" * 24, 100, 20, 256, "trainjob"), ("a" * 24, 100, 20, 99, "job"),
])
def test_every_name_a_valid_spec_can_produce_fits(name, rounds, retries, workers, backend):
    training = {"workers": workers} | ({"backend": backend} if backend else {})
    if workers and backend == "job":
        training = {"backend": "job"}
    doc = SafetyEvolution.model_validate(evolution(name, rounds=rounds, retries=retries, training=training))
    for cycle in (0, 1, CYCLE_LABELS - 1, CYCLE_LABELS, 10 * CYCLE_LABELS + 7):
        for round_ in range(rounds + 1):
            for stage in Stage:
                for attempt in (0, retries, MAX_ATTEMPTS):  # retries, disruptions and edits all take attempts
                    child = child_name(doc.metadata.name, StageKey(round_, stage), cycle, attempt)
                    assert len(child) <= MAX_LABEL
                    if stage in (Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM) and backend in (None, "pytorchjob"):
                        assert len(f"{child}-worker-{max(workers - 1, 0)}") <= MAX_LABEL
