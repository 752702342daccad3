"""``attack``: the red team writes adversarial prompts from seeds, the target answers, the judge labels."""

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
    sampling = Sampling(cfg.attack.responseTemperature, cfg.attack.topP, cfg.attack.maxNewTokens, seed=cfg.seed * 1000 + cfg.round + 1)
    conversations = [[{"role": "user", "content": row["prompt"]}] for row in rows for _ in range(n)]
    target = pool.get(cfg.target, scoring=True)
    answers = target.chat(conversations, sampling, progress.task("target answers", len(conversations)))
    perplexities = prompt_perplexities(target, [row["prompt"] for row in rows])
    judge = make_judge(cfg.classifier, pool.get)
    # A behaviour classifier judges each answer against what the seed asked for, not the prompt's wording.
    asked = [row["seed"] if judge.against_behaviour else row["prompt"] for row in rows for _ in range(n)]
    verdicts = judge.judge(list(zip(asked, answers)), progress.task("judge", len(answers)))
    goals = mark_goals(rows, perplexities, judge, cfg.attack)
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
