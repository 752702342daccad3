"""``evaluate``: target ASR on the held-out set, red-team ASR against the round-0 target,
benign over-refusal, and knowledge drift (arXiv 2409.19476)."""

from __future__ import annotations

import time
from pathlib import Path

from .. import data
from ..artifacts import write_jsonl
from ..contract import EvaluateConfig, EvaluateResult, VerdictCounts
from ..engine_pool import EnginePool
from ..engines import Sampling
from ..figures import asr, asr_by, count, error_rate, rate
from ..judges import make_judge
from ..judges.refusal import is_refusal
from ..knowledge import knowledge
from ..progress import Progress
from ..redteam import write_attacks


def run(cfg: EvaluateConfig, progress: Progress) -> EvaluateResult:
    started = time.monotonic()
    ev = cfg.evaluation
    heldout = data.load("heldout", cfg.data.heldout)
    benign = data.load("benign", cfg.data.benign)
    questions = data.load("knowledge", cfg.data.knowledge)
    pool = EnginePool(cfg.cacheDir, ev.batchSize, cfg.seed)
    greedy = Sampling(temperature=0.0, max_new_tokens=ev.maxNewTokens, seed=cfg.seed)
    records: list[dict] = []

    target = pool.get(cfg.target)
    answers = target.chat([[{"role": "user", "content": i.prompt}] for i in heldout], greedy, progress.task("held-out answers", len(heldout)))
    benign_answers = target.chat([[{"role": "user", "content": i.prompt}] for i in benign], greedy, progress.task("benign answers", len(benign)))
    scored = sum(len(q.choices) for q in questions) * len(ev.knowledgeContexts)
    by_context = knowledge(target, questions, list(ev.knowledgeContexts), cfg.seed, progress.task("knowledge", scored))

    red_rows: list[dict] = []
    red_answers: list[str] = []
    if cfg.redTeam is not None and ev.redteamSamples > 0:
        seeds = data.stratified_subset(data.load("seeds", cfg.data.seeds), cfg.attack.maxSeeds, cfg.seed)
        red_team = pool.get(cfg.redTeam)
        red_rows = write_attacks(red_team, seeds, ev.redteamSamples, cfg.attack, cfg.seed, cfg.round,
                                 progress.task("red-team prompts", len(seeds) * ev.redteamSamples))
        red_answers = pool.get(cfg.baselineTarget).chat(
            [[{"role": "user", "content": r["prompt"]}] for r in red_rows], greedy, progress.task("round-0 target answers", len(red_rows))
        )

    judge = make_judge(cfg.classifier, pool.get)
    verdicts = judge.judge([(i.prompt, a) for i, a in zip(heldout, answers)], progress.task("judge held-out", len(heldout)))
    red_verdicts = judge.judge([(r["prompt"], a) for r, a in zip(red_rows, red_answers)]) if red_rows else []
    pool.close()

    counts = count(verdicts)
    refusals = [is_refusal(a) for a in benign_answers]
    for item, answer, verdict in zip(heldout, answers, verdicts):
        records.append({"set": "heldout", "id": item.id, "category": item.category, "style": item.style, "prompt": item.prompt, "answer": answer, "verdict": verdict.label, "categories": list(verdict.categories)})
    for item, answer, refused in zip(benign, benign_answers, refusals):
        records.append({"set": "benign", "id": item.id, "prompt": item.prompt, "answer": answer, "refused": refused})
    for row, answer, verdict in zip(red_rows, red_answers, red_verdicts):
        records.append({"set": "redteam", "id": row["id"], "prompt": row["prompt"], "answer": answer, "verdict": verdict.label})
    path = write_jsonl(Path(cfg.outputDir) / "records.jsonl", records)

    target_asr = asr(counts)
    red_counts = count(red_verdicts) if red_rows else None
    red_asr = asr(red_counts) if red_counts else None
    main = "none" if "none" in by_context else next(iter(by_context))
    return EvaluateResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1),
        targetASR=None if target_asr is None else round(target_asr, 4), targetCounts=VerdictCounts(**counts.__dict__),
        byCategory=asr_by([i.category for i in heldout], verdicts), byStyle=asr_by([i.style for i in heldout], verdicts),
        redteamASR=None if red_asr is None else round(red_asr, 4),
        redteamCounts=VerdictCounts(**red_counts.__dict__) if red_counts else None,
        benignRefusalRate=round(rate(refusals), 4), judgeErrorRate=round(error_rate(counts), 4),
        knowledge=by_context[main], knowledgeByContext=by_context, judge=judge.info, records=str(path),
    )
