"""Pure builders of stage configs (the JSON each ``seas-runtime`` stage reads).

Returns plain dicts matching ``seas_runtime.contract`` so the operator can build
them without importing the runtime.
"""

from __future__ import annotations

from typing import Mapping, Optional

from .api import SafetyEvolutionSpec
from .planner import StageKey, redteam_model, target_model


def stage_dir(root: str, key: StageKey) -> str:
    """Where a stage's artifacts and result live under the evolution's root."""
    return f"{root.rstrip('/')}/r{key.round}/{key.stage}"


def _dump(model) -> dict:
    return model.model_dump(mode="json")


def build_stage_config(
    evolution: str,
    spec: SafetyEvolutionSpec,
    key: StageKey,
    done: Mapping[StageKey, object],
    root: str,
    cache_dir: Optional[str] = None,
    start_model: Optional[str] = None,
) -> dict:
    """The config for stage ``key``, given the results of the stages it depends on."""
    base = {"evolution": evolution, "round": key.round, "outputDir": stage_dir(root, key), "seed": spec.seed, "cacheDir": cache_dir}
    r = key.round
    if key.stage == "initialize":
        return {**base, "stage": "initialize", "redTeam": _dump(spec.redTeam), "seeds": spec.data.seeds,
                "initialization": _dump(spec.initialization), "training": _dump(spec.training)}
    if key.stage == "attack":
        return {**base, "stage": "attack", "target": _dump(target_model(spec, done, r - 1, start_model)),
                "redTeam": _dump(redteam_model(spec, done, r - 1)), "classifier": _dump(spec.classifier),
                "attack": _dump(spec.attack), "seeds": spec.data.seeds}
    if key.stage == "pairs":
        attack = done[StageKey(r, "attack")]
        return {**base, "stage": "pairs", "records": getattr(attack, "records"), "pairs": _dump(spec.pairs),
                "maxPairs": spec.training.maxPairs, "helpful": spec.data.helpful}
    if key.stage in ("train-target", "train-redteam"):
        pairs = done[StageKey(r, "pairs")]
        if key.stage == "train-target":
            model, pairs_file = target_model(spec, done, r - 1, start_model), getattr(pairs, "targetFile")
        else:
            model, pairs_file = redteam_model(spec, done, r - 1), getattr(pairs, "redteamFile")
        return {**base, "stage": key.stage, "model": _dump(model), "pairsFile": pairs_file, "training": _dump(spec.training)}
    if key.stage == "evaluate":
        return {**base, "stage": "evaluate", "target": _dump(target_model(spec, done, r, start_model)),
                "redTeam": _dump(redteam_model(spec, done, r)), "baselineTarget": _dump(target_model(spec, done, 0, start_model)),
                "classifier": _dump(spec.classifier), "evaluation": _dump(spec.evaluation), "attack": _dump(spec.attack),
                "data": _dump(spec.data)}
    raise ValueError(f"unknown stage {key.stage!r}")
