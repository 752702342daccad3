"""The stage recipes behind ``seas-runtime <stage>``: each takes its typed config and returns its typed result.

Stages never import each other; what several share lives in the runtime's named
modules (engine pool, red-team writing, knowledge scoring, training helpers).
A new stage is a module here with ``run(cfg, progress) -> result``, a member of
``contract.Stage`` with its config and result models, and an entry in
:func:`recipe`.
"""

from __future__ import annotations

from types import ModuleType

from ..contract import Stage


def recipe(stage: Stage) -> ModuleType:
    """The module whose ``run`` carries out ``stage`` (imported lazily: they pull in torch)."""
    from . import attack, evaluate, initialize, pairs, train

    return {
        Stage.INITIALIZE: initialize, Stage.ATTACK: attack, Stage.PAIRS: pairs,
        Stage.TRAIN_TARGET: train, Stage.TRAIN_REDTEAM: train, Stage.EVALUATE: evaluate,
    }[stage]
