"""Pure retention decisions (``spec.retention``): which children and which cycle folders of older cycles go.

A scheduled re-check starts a new cycle; every child is labelled with its cycle
(``kinds.LABEL_CYCLE``) and every cycle has its own artifact folder
(``layout.cluster_root``). The operator keeps the children of the last
``retention.children`` cycles and deletes older ones itself; it cannot reach
the volume, so the folders of cycles older than ``retention.checkpoints`` are
handed to the cycle's first stage (its config's ``prune``), which deletes them
before it runs. A folder holding a protected model (the promoted one, the
cycle's start model) is never pruned, nor is the child that wrote it.
"""

from __future__ import annotations

import posixpath
from typing import Any, Callable, Collection, Iterable, Mapping, Optional

from seas_runtime.contract import Stage, StageKey
from seas_runtime.layout import stage_dir

from .kinds import LABEL_CYCLE, LABEL_ROUND, LABEL_STAGE

# Cycles that expired recently are listed again at every new cycle: a prune that never ran (the stage failed before
# it) or a lowered spec.retention.checkpoints catches up. Deleting a folder that is already gone costs nothing.
PRUNE_LOOKBACK = 32

CycleRoot = Callable[[int], str]  # cycle -> its artifact folder, e.g. functools.partial(layout.cluster_root, mount, ns, name)


def holds(folder: str, path: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (lexically, as the operator cannot see the volume)."""
    folder, path = posixpath.normpath(folder), posixpath.normpath(path)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _label_int(labels: Mapping[str, Any], key: str) -> Optional[int]:
    value = str(labels.get(key, ""))
    return int(value) if value.isdigit() else None


def child_cycle(child: Mapping[str, Any]) -> Optional[int]:
    """The cycle a child belongs to by its label; None when unlabelled (never ours to prune)."""
    return _label_int((child.get("metadata") or {}).get("labels") or {}, LABEL_CYCLE)


def _child_dir(child: Mapping[str, Any], cycle: int, root: CycleRoot) -> Optional[str]:
    labels = (child.get("metadata") or {}).get("labels") or {}
    round_ = _label_int(labels, LABEL_ROUND)
    try:
        stage = Stage(str(labels.get(LABEL_STAGE, "")))
    except ValueError:
        return None
    return None if round_ is None else stage_dir(root(cycle), StageKey(round_, stage))


def children_to_prune(children: Mapping[str, Mapping[str, Any]], cycle: int, keep: int, root: CycleRoot,
                      protected: Collection[str] = ()) -> list[tuple[str, str]]:
    """(kind, name) of the children of cycles before the last ``keep`` (the current ``cycle`` included), sorted by name.

    Children without a cycle label or kind, children already being deleted, and the child whose folder holds a
    ``protected`` path (the run that trained the promoted model keeps its logs) are left alone.
    """
    out = []
    for name, child in children.items():
        c = child_cycle(child)
        kind = child.get("kind")
        if c is None or not kind or c > cycle - keep or (child.get("metadata") or {}).get("deletionTimestamp"):
            continue
        folder = _child_dir(child, c, root)
        if folder is None or any(holds(folder, p) for p in protected):
            continue
        out.append((str(kind), name))
    return sorted(out, key=lambda kn: kn[1])


def pruned_message(children: Mapping[str, Mapping[str, Any]], pruned: Iterable[tuple[str, str]], keep: int) -> str:
    """The ``Pruned`` Event's text: how many children of which cycles were deleted."""
    names = [name for _, name in pruned]
    cycles = sorted({c for c in (child_cycle(children[n]) for n in names if n in children) if c is not None})
    return (f"deleted {len(names)} children of cycle{'s' if len(cycles) != 1 else ''} {', '.join(map(str, cycles))} "
            f"(spec.retention.children={keep})")


def cycle_of(path: str, root: CycleRoot) -> Optional[int]:
    """The cycle whose folder holds ``path``, else None (e.g. a hub model id or the shared cache)."""
    prefix = posixpath.dirname(root(0).rstrip("/")) + "/c"
    path = posixpath.normpath(path)
    if not path.startswith(prefix):
        return None
    digits = path[len(prefix):].split("/", 1)[0]
    return int(digits) if digits.isdigit() and holds(root(int(digits)), path) else None


def cycle_roots_to_prune(cycle: int, keep: int, root: CycleRoot, protected: Collection[str] = (),
                         released: Iterable[str] = (), lookback: int = PRUNE_LOOKBACK) -> list[str]:
    """The artifact folders of cycles before the last ``keep`` that the current ``cycle``'s first stage deletes, oldest first.

    Lists the ``lookback`` most recently expired cycles, plus the cycles holding ``released`` paths (models that
    were protected once, e.g. the promoted models of ``status.history``: their folder is due once nothing
    protects it any more). A folder that holds a ``protected`` path is kept however old.
    """
    last = cycle - keep  # the newest cycle to prune
    if last < 0:
        return []
    cycles = set(range(max(0, last - lookback + 1), last + 1))
    cycles |= {c for c in (cycle_of(p, root) for p in released if p) if c is not None and c <= last}
    return [root(c) for c in sorted(cycles) if not any(holds(root(c), p) for p in protected if p)]


__all__ = ["PRUNE_LOOKBACK", "child_cycle", "children_to_prune", "cycle_of", "cycle_roots_to_prune", "holds", "pruned_message"]
