"""Child object names, and the longest one a spec can ever produce.

Children are named ``<evolution>[-c<cycle>]-r<round>-<stage>[-retry<attempt>]`` so a
restarted operator finds what it created. Every part is bounded: rounds by the spec's
limit, attempts by ``MAX_ATTEMPTS`` (retries, disruptions and edits that retry a failed
stage all take one), and the cycle by folding it modulo ``CYCLE_LABELS`` (by the time
a cycle number comes round again, retention has long removed the old children).
The training operator adds ``-master-0`` / ``-worker-<i>`` for a PyTorchJob's pods and
Services, which must stay DNS labels of at most 63 characters too.
"""

from __future__ import annotations

from seas_runtime.contract import Stage, StageKey

MAX_LABEL = 63
MAX_ATTEMPTS = 99  # attempts of one stage in one cycle, whatever restarted them
CYCLE_LABELS = 1000  # cycles after the first are labelled 1..999 in names, then the labels wrap


def child_name(evolution: str, key: StageKey, cycle: int = 0, attempt: int = 0) -> str:
    """Deterministic child name ``<evolution>[-c<cycle>]-r<round>-<stage>[-retry<attempt>]``."""
    prefix = evolution if cycle == 0 else f"{evolution}-c{(cycle - 1) % (CYCLE_LABELS - 1) + 1}"
    return f"{prefix}-r{key.round}-{key.stage}" + (f"-retry{attempt}" if attempt else "")


def longest_names(evolution: str, rounds: int, workers: int, pytorchjob: bool) -> list[str]:
    """The longest child name, and the longest name the training operator derives from it, for these limits."""
    longest_stage = max((s for s in Stage), key=lambda s: len(str(s)))
    child = child_name(evolution, StageKey(rounds, longest_stage), CYCLE_LABELS - 1, MAX_ATTEMPTS)
    train = child_name(evolution, StageKey(rounds, Stage.TRAIN_REDTEAM), CYCLE_LABELS - 1, MAX_ATTEMPTS)
    replica = f"{train}-worker-{workers - 1}" if workers else f"{train}-master-0"
    return [child] + ([replica] if pytorchjob else [])
