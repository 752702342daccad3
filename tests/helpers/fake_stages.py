"""What a stand-in ``seas-runtime`` writes for the stages whose figures a test does not look at.

The fake runtimes of the ``seas run`` tests are scripts run as subprocesses; they import this
module (the repository root on ``sys.path``) and only make the evaluation's figures themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from seas_runtime.artifacts import atomic_dir
from seas_runtime.contract import AttackResult, InitializeResult, JudgeInfo, PairsResult, StageResult, TrainResult, VerdictCounts
from seas_runtime.stats import Rate

JUDGE = JudgeInfo(type="refusal-match")


def quick_result(stage: str, cfg, out: Path, weights: str = "w") -> Optional[StageResult]:
    """A plausible result for a train, attack, pairs or initialize stage (a training stage also writes a
    model folder holding ``weights``); None for ``evaluate``, whose figures each test makes itself."""
    if stage in ("train-target", "train-redteam"):
        with atomic_dir(out / "model") as tmp:
            (tmp / "weights.txt").write_text(weights)
        return TrainResult(round=cfg.round, stage=stage, model=str(out / "model"), trained=True, pairs=3)
    if stage == "attack":
        return AttackResult(round=cfg.round, records=str(out / "records.jsonl"), prompts=4, responses=8,
                            counts=VerdictCounts(safe=4, unsafe=4), asr=Rate.of(4, 8), judge=JUDGE)
    if stage == "pairs":
        return PairsResult(round=cfg.round, target=3, redteam=2, targetFile=str(out / "target.jsonl"), redteamFile=str(out / "redteam.jsonl"))
    if stage == "initialize":
        return InitializeResult(round=0, model=str(out / "model"), examples=4)
    return None
