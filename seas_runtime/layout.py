"""Where a run's artifacts live: the one definition of the folder layout both planes use.

::

    <root>/.seas-run.lock                 held by the one ``seas run`` using the folder (local runs)
    <root>/r<round>/<stage>/config.json   the stage config (local runs)
                            result.json   the stage result
                            inputs.json   the fingerprint of what the result was made from (local runs)
                            stage.log     the stage's log (local runs)
                            ...           the stage's artifacts (records, pairs, model/)

Locally ``root`` is ``seas run``'s output folder. In a cluster it is
``<mountPath>/<namespace>/<evolution>/c<cycle>`` on the artifact volume, and
embedded models are materialized once into ``<mountPath>/.cache``.
"""

from __future__ import annotations

from .contract import StageKey

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
LOG_FILE = "stage.log"
INPUTS_FILE = "inputs.json"
LOCK_FILE = ".seas-run.lock"


def stage_dir(root: str, key: StageKey) -> str:
    """The folder stage ``key`` owns under ``root``."""
    return f"{root.rstrip('/')}/r{key.round}/{key.stage}"


def cluster_root(mount_path: str, namespace: str, evolution: str, cycle: int) -> str:
    """The root of one cycle of an evolution on the artifact volume."""
    return f"{mount_path.rstrip('/')}/{namespace}/{evolution}/c{cycle}"


def cluster_cache(mount_path: str) -> str:
    """The model cache on the artifact volume, shared by every evolution."""
    return f"{mount_path.rstrip('/')}/.cache"
