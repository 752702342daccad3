"""Pure builders of stage configs: the typed ``seas_runtime.contract`` config each stage reads."""

from __future__ import annotations

from typing import Optional, Sequence

from seas_runtime.contract import (
    AttackConfig,
    AttackResult,
    EvaluateConfig,
    EvaluateResult,
    InitializeConfig,
    PairsConfig,
    PairsResult,
    Stage,
    StageConfig,
    StageKey,
    TrainConfig,
)
from seas_runtime.layout import stage_dir

from .api import SafetyEvolutionSpec
from .planner import Done, redteam_model, result_of, target_model


def build_stage_config(
    evolution: str,
    spec: SafetyEvolutionSpec,
    key: StageKey,
    done: Done,
    root: str,
    cache_dir: Optional[str] = None,
    start_model: Optional[str] = None,
    prune: Sequence[str] = (),
    previous_records: Optional[str] = None,
) -> StageConfig:
    """The config for stage ``key``, given the results of the stages it depends on.

    ``prune``: artifact folders of expired cycles the stage deletes before it runs (``retention.cycle_roots_to_prune``;
    the operator hands them to a cycle's first stage). ``previous_records``: mode evaluate, the last cycle's evaluation
    records, which round 0's paired changes (regression, accuracy change) are measured against.
    """
    base = dict(evolution=evolution, round=key.round, outputDir=stage_dir(root, key), seed=spec.seed, cacheDir=cache_dir, prune=list(prune))
    r = key.round
    if key.stage == Stage.INITIALIZE:
        return InitializeConfig(**base, redTeam=spec.redTeam, seeds=spec.data.seeds, initialization=spec.initialization, training=spec.training)
    if key.stage == Stage.ATTACK:
        prior = max(r - 1, 0)  # round 0's attack (mode evaluate) attacks the untouched target
        return AttackConfig(**base, target=target_model(spec, done, prior, start_model), redTeam=redteam_model(spec, done, prior),
                            classifier=spec.classifier, attack=spec.attack, seeds=spec.data.seeds)
    if key.stage == Stage.PAIRS:
        attack = result_of(done, StageKey(r, Stage.ATTACK), AttackResult, required=True)
        return PairsConfig(**base, records=attack.records, pairs=spec.pairs, maxPairs=spec.training.maxPairs, helpful=spec.data.helpful)
    if key.stage in (Stage.TRAIN_TARGET, Stage.TRAIN_REDTEAM):
        pairs = result_of(done, StageKey(r, Stage.PAIRS), PairsResult, required=True)
        if key.stage == Stage.TRAIN_TARGET:
            model, pairs_file = target_model(spec, done, r - 1, start_model), pairs.targetFile
        else:
            model, pairs_file = redteam_model(spec, done, r - 1), pairs.redteamFile
        return TrainConfig(**base, stage=key.stage, model=model, pairsFile=pairs_file, training=spec.training)
    if key.stage == Stage.EVALUATE:
        earlier = {}
        if r > 0:  # the paired changes: against the round before and against round 0
            earlier = dict(previousRecords=result_of(done, StageKey(r - 1, Stage.EVALUATE), EvaluateResult, required=True).records,
                           baselineRecords=result_of(done, StageKey(0, Stage.EVALUATE), EvaluateResult, required=True).records)
        elif previous_records:
            earlier = dict(previousRecords=previous_records, baselineRecords=previous_records)
        return EvaluateConfig(**base, target=target_model(spec, done, r, start_model), redTeam=redteam_model(spec, done, r),
                              baselineTarget=target_model(spec, done, 0, start_model), classifier=spec.classifier,
                              evaluation=spec.evaluation, attack=spec.attack, data=spec.data, **earlier)
    raise ValueError(f"unknown stage {key.stage!r}")
