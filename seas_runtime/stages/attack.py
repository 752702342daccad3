"""``attack``: the red team writes adversarial prompts from seeds, the target answers, the judge labels."""

from __future__ import annotations

import time
from pathlib import Path

from .. import data
from ..artifacts import write_jsonl
from ..contract import AttackConfig, AttackResult, EvaluateConfig, VerdictCounts
from ..engines import Sampling
from ..metrics import asr, count
from ..progress import Progress
from ..prompts import clean_attack, redteam_instruction
from .common import EnginePool, judge_for


def write_attacks(pool: EnginePool, cfg: AttackConfig | EvaluateConfig, seeds: list[data.PromptItem], per_seed: int, progress: Progress, task: str) -> list[dict]:
    """Red-team prompts for each seed, with the instruction that produced them (the DPO prompt)."""
    jobs = [(seed, k) for seed in seeds for k in range(per_seed)]
    instructions = [redteam_instruction(seed) for seed, _ in jobs]
    sampling = Sampling(cfg.attack.temperature, cfg.attack.topP, cfg.attack.maxNewTokens, seed=cfg.seed * 1000 + cfg.round)
    texts = pool.get(cfg.redTeam).chat([[{"role": "user", "content": i}] for i in instructions], sampling, progress.task(task, len(jobs)))
    rows = []
    for (seed, k), instruction, text in zip(jobs, instructions, texts):
        attack = clean_attack(text)
        rows.append({
            "id": f"r{cfg.round}-{seed.id}-p{k}", "seed_id": seed.id, "category": seed.category, "style": seed.style,
            "instruction": instruction, "prompt": attack or seed.prompt, "fallback": not attack,
        })
    return rows


def run(cfg: AttackConfig, progress: Progress) -> AttackResult:
    started = time.monotonic()
    seeds = data.stratified_subset(data.load("seeds", cfg.seeds), cfg.attack.maxSeeds, cfg.seed + cfg.round)
    pool = EnginePool(cfg.cacheDir, cfg.attack.batchSize, cfg.seed)
    rows = write_attacks(pool, cfg, seeds, cfg.attack.samplesPerSeed, progress, "red team writes prompts")
    n = cfg.attack.responsesPerPrompt
    sampling = Sampling(cfg.attack.responseTemperature, cfg.attack.topP, cfg.attack.maxNewTokens, seed=cfg.seed * 1000 + cfg.round + 1)
    conversations = [[{"role": "user", "content": row["prompt"]}] for row in rows for _ in range(n)]
    answers = pool.get(cfg.target).chat(conversations, sampling, progress.task("target answers", len(conversations)))
    judge = judge_for(cfg.classifier, pool)
    pairs = [(c[0]["content"], a) for c, a in zip(conversations, answers)]
    verdicts = judge.judge(pairs, progress.task("judge", len(pairs)))
    pool.close()
    for i, row in enumerate(rows):
        row["responses"] = [
            {"text": answers[i * n + j], "verdict": verdicts[i * n + j].label, "categories": list(verdicts[i * n + j].categories), "reason": verdicts[i * n + j].reason}
            for j in range(n)
        ]
    records = write_jsonl(Path(cfg.outputDir) / "records.jsonl", rows)
    counts = count(verdicts)
    value = asr(counts)
    return AttackResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), records=str(records), prompts=len(rows),
        responses=len(answers), counts=VerdictCounts(**counts.__dict__), asr=None if value is None else round(value, 4), judge=judge.info,
    )
