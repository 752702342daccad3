"""``attack``: the red team writes adversarial prompts from seeds, the target answers, the judge labels.

The target answers each on-goal prompt, and the seed in place of an off-goal one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .. import data
from ..artifacts import write_jsonl
from ..contract import AttackConfig, AttackResult, VerdictCounts
from ..engine_pool import EnginePool
from ..engines import Sampling
from ..figures import asr, count
from ..judges import make_judge
from ..progress import Progress
from ..redteam import mark_goals, prompt_perplexities, write_attacks

log = logging.getLogger(__name__)


def run(cfg: AttackConfig, progress: Progress) -> AttackResult:
    started = time.monotonic()
    seeds = data.stratified_subset(data.load("seeds", cfg.seeds), cfg.attack.maxSeeds, cfg.seed + cfg.round)
    pool = EnginePool(cfg.cacheDir, cfg.attack.batchSize, cfg.seed)
    red_team = pool.get(cfg.redTeam)
    rows = write_attacks(red_team, seeds, cfg.attack.samplesPerSeed, cfg.attack, cfg.seed, cfg.round,
                         progress.task("red team writes prompts", len(seeds) * cfg.attack.samplesPerSeed))
    n = cfg.attack.responsesPerPrompt
    target = pool.get(cfg.target, scoring=True)
    judge = make_judge(cfg.classifier, pool.get)
    goals = mark_goals(rows, prompt_perplexities(target, [row["prompt"] for row in rows]), judge, cfg.attack)
    # A prompt that asks for nothing harmful (off-goal, gibberish) is no attack: an answer to it says nothing about
    # the target's safety, and a refusal of it would teach over-refusal. The target answers the seed in its place,
    # so its pairs are always about a harmful request; the red team's record keeps its own prompt (never chosen).
    for row in rows:
        row["asked"] = row["prompt"] if row["offGoal"] is None else row["seed"]
    sampling = Sampling(cfg.attack.responseTemperature, cfg.attack.topP, cfg.attack.maxNewTokens, seed=cfg.seed * 1000 + cfg.round + 1)
    conversations = [[{"role": "user", "content": row["asked"]}] for row in rows for _ in range(n)]
    answers = target.chat(conversations, sampling, progress.task("target answers", len(conversations)))
    # A behaviour classifier judges each answer against what the seed asked for, not the prompt's wording.
    asked = [row["seed"] if judge.against_behaviour else row["asked"] for row in rows for _ in range(n)]
    verdicts = judge.judge(list(zip(asked, answers)), progress.task("judge", len(answers)))
    pool.close()
    log.info("red-team prompts: %s", ", ".join(f"{count} {reason}" for reason, count in sorted(goals.items())))
    for i, row in enumerate(rows):
        row["responses"] = [
            {"text": answers[i * n + j], "verdict": verdicts[i * n + j].label, "categories": list(verdicts[i * n + j].categories), "reason": verdicts[i * n + j].reason}
            for j in range(n)
        ]
    records = write_jsonl(Path(cfg.outputDir) / "records.jsonl", rows)
    counts = count(verdicts)
    return AttackResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), records=str(records), prompts=len(rows),
        responses=len(answers), counts=VerdictCounts(**counts.__dict__), asr=asr(counts), judge=judge.info, goals=dict(goals),
    )
