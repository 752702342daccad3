"""``evaluate``: target ASR on the held-out set, red-team ASR against the round-0 target,
benign over-refusal, and knowledge drift (arXiv 2409.19476)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from .. import data
from ..artifacts import write_jsonl
from ..contract import EvaluateConfig, EvaluateResult, KnowledgeFigures, VerdictCounts
from ..engines import Engine, Sampling, ScoreRequest
from ..judges.refusal import is_refusal
from ..metrics import asr, asr_by, count, error_rate, item_knowledge, mean_knowledge, rate
from ..progress import Progress
from ..prompts import knowledge_choice, knowledge_context, knowledge_question
from .attack import write_attacks
from .common import EnginePool, judge_for


def knowledge(engine: Engine, items: list[data.QAItem], kinds: list[str], seed: int, progress: Progress) -> dict[str, KnowledgeFigures]:
    """Accuracy, perplexity, entropy and answer probability per context kind."""
    rng = random.Random(seed)
    requests, layout = [], []
    for kind in kinds:
        for item in items:
            prompt = knowledge_question(item, knowledge_context(item, kind, items, rng))
            layout.append((kind, item, len(requests)))
            requests.extend(ScoreRequest(prompt, knowledge_choice(choice)) for choice in item.choices)
    scores = engine.score(requests, progress.task("knowledge", len(requests)))
    per_kind: dict[str, list] = {kind: [] for kind in kinds}
    for kind, item, start in layout:
        choice_scores = scores[start : start + len(item.choices)]
        per_kind[kind].append(item_knowledge([s.logprob for s in choice_scores], item.answer, choice_scores[item.answer].tokens))
    return {kind: KnowledgeFigures(**mean_knowledge(values)) for kind, values in per_kind.items()}


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
    by_context = knowledge(target, questions, list(ev.knowledgeContexts), cfg.seed, progress)

    red_rows: list[dict] = []
    red_answers: list[str] = []
    if cfg.redTeam is not None and ev.redteamSamples > 0:
        seeds = data.stratified_subset(data.load("seeds", cfg.data.seeds), cfg.attack.maxSeeds, cfg.seed)
        red_rows = write_attacks(pool, cfg, seeds, ev.redteamSamples, progress, "red-team prompts")
        red_answers = pool.get(cfg.baselineTarget).chat(
            [[{"role": "user", "content": r["prompt"]}] for r in red_rows], greedy, progress.task("round-0 target answers", len(red_rows))
        )

    judge = judge_for(cfg.classifier, pool)
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
