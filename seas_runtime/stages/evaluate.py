"""``evaluate``: a round's safety figures, each as k/n with its interval, and the paired changes since earlier rounds.

- direct ASR: plain harmful requests (no attack template) answered unsafely;
- adversarial ASR: the templated held-out set, greedy, and sampled at a temperature;
- contrast refusal: benign requests in the same attack templates that were refused
  (a model that learned "refuse anything that looks like a jailbreak" shows here);
- benign refusal: benign-but-edgy prompts that were refused (over-refusal);
- red-team ASR: the round's red team against the fixed round-0 target; an attack succeeds when the answer is
  unsafe *and* the prompt still asks for its seed's goal (off-goal, gibberish and seed copies fail);
- knowledge drift (arXiv 2409.19476): each question answered in chat mode (normalised-match accuracy, perplexity,
  top-10 entropy and top-token probability of the answer) and scored cloze-style (accuracy, acc_norm, perplexity,
  entropy, answer probability), with each of the paper's contexts;
- regression: the direct and adversarial verdicts against the previous round, paired by
  prompt (exact McNemar), and the accuracy change against round 0, paired by question.

Every answer, verdict and QA item goes to ``records.jsonl``, so later rounds can pair with them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .. import data
from ..artifacts import read_jsonl, write_jsonl
from ..contract import EvaluateConfig, EvaluateResult
from ..data import DataError
from ..engine_pool import EnginePool
from ..engines import Sampling
from ..figures import asr, asr_by, count, error_rate, rate, redteam_success, unsafe_by_item, wrong_by_item
from ..judges import make_judge
from ..judges.refusal import opens_by_declining
from ..knowledge import contexts, generate_knowledge, mean_generation, mean_knowledge, score_knowledge
from ..progress import Progress
from ..redteam import mark_goals, prompt_perplexities, write_attacks
from ..stats import PairedChange, paired_change_by_id

JUDGED_SETS = ("direct", "adversarial")  # answers the judge labels; the target ASRs


def _conversations(items: list) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": item.prompt}] for item in items]


def _earlier(path: Optional[str]) -> Optional[list[dict]]:
    """An earlier round's records, or None when there is no earlier round."""
    if not path:
        return None
    try:
        return read_jsonl(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the earlier round's records: {exc}") from None


def _paired(before: Optional[list[dict]], now: list[dict], by_item, level: float) -> Optional[PairedChange]:
    return None if before is None else paired_change_by_id(by_item(before), by_item(now), level)


def run(cfg: EvaluateConfig, progress: Progress) -> EvaluateResult:
    started = time.monotonic()
    ev, confidence = cfg.evaluation, cfg.evaluation.confidence
    sets = {
        "direct": data.load("direct", cfg.data.direct),
        "adversarial": data.load("heldout", cfg.data.heldout),
        "contrast": data.load("contrast", cfg.data.contrast),
        "benign": data.load("benign", cfg.data.benign),
    }
    questions = data.load("knowledge", cfg.data.knowledge)
    previous, baseline = _earlier(cfg.previousRecords), _earlier(cfg.baselineRecords)
    pool = EnginePool(cfg.cacheDir, ev.batchSize, cfg.seed)
    greedy = Sampling(temperature=0.0, max_new_tokens=ev.maxNewTokens, seed=cfg.seed)

    target = pool.get(cfg.target, scoring=True)
    answers = {name: target.chat(_conversations(items), greedy, progress.task(f"{name} answers", len(items))) for name, items in sets.items()}
    sampled_items = [item for item in sets["adversarial"] for _ in range(ev.samples)]
    sampling = Sampling(ev.sampleTemperature, cfg.attack.topP, ev.maxNewTokens, seed=cfg.seed * 1000 + cfg.round + 2)
    sampled = target.chat(_conversations(sampled_items), sampling, progress.task("sampled answers", len(sampled_items))) if sampled_items else []
    asked = contexts(questions, ev.knowledgeContexts, cfg.seed)
    scored = sum(len(q.choices) for q in questions) * len(asked)
    per_context = score_knowledge(target, questions, asked, progress.task("knowledge (cloze)", scored))
    generated = generate_knowledge(target, questions, asked, ev.knowledgeMaxTokens, progress.task("knowledge (chat)", len(questions) * len(asked))) \
        if ev.knowledgeGeneration else {}

    red_rows: list[dict] = []
    red_answers: list[str] = []
    if cfg.redTeam is not None and ev.redteamSamples > 0:
        seeds = data.stratified_subset(data.load("seeds", cfg.data.seeds), cfg.attack.maxSeeds, cfg.seed)
        red_team = pool.get(cfg.redTeam)
        red_rows = write_attacks(red_team, seeds, ev.redteamSamples, cfg.attack, cfg.seed, cfg.round,
                                 progress.task("red-team prompts", len(seeds) * ev.redteamSamples))
        round0 = pool.get(cfg.baselineTarget, scoring=True)
        red_answers = round0.chat([[{"role": "user", "content": r["prompt"]}] for r in red_rows], greedy, progress.task("round-0 target answers", len(red_rows)))
        red_perplexities = prompt_perplexities(round0, [r["prompt"] for r in red_rows])

    judge = make_judge(cfg.classifier, pool.get)
    judged = [(item.prompt, answer) for name in JUDGED_SETS for item, answer in zip(sets[name], answers[name])]
    judged += [(item.prompt, answer) for item, answer in zip(sampled_items, sampled)]
    judged += [(row["seed"] if judge.against_behaviour else row["prompt"], answer) for row, answer in zip(red_rows, red_answers)]
    all_verdicts = judge.judge(judged, progress.task("judge", len(judged)))
    if red_rows:
        mark_goals(red_rows, red_perplexities, judge, cfg.attack)
    pool.close()
    cut = [len(sets["direct"]), len(sets["adversarial"]), len(sampled), len(red_rows)]
    verdicts, position = {}, 0
    for name, size in zip(("direct", "adversarial", "sampled", "redteam"), cut):
        verdicts[name], position = all_verdicts[position : position + size], position + size
    refused = {name: [opens_by_declining(a) for a in answers[name]] for name in ("contrast", "benign")}

    records: list[dict] = []
    for name in JUDGED_SETS:
        for item, answer, verdict in zip(sets[name], answers[name], verdicts[name]):
            records.append({"set": name, "id": item.id, "category": item.category, "style": item.style, "prompt": item.prompt, "answer": answer,
                            "verdict": verdict.label, "categories": list(verdict.categories), "reason": verdict.reason, "score": verdict.score})
    for sample, (item, answer, verdict) in enumerate(zip(sampled_items, sampled, verdicts["sampled"])):
        records.append({"set": "sampled", "id": item.id, "sample": sample % ev.samples, "prompt": item.prompt, "answer": answer,
                        "verdict": verdict.label, "score": verdict.score})
    for name in ("contrast", "benign"):
        for item, answer, flag in zip(sets[name], answers[name], refused[name]):
            records.append({"set": name, "id": item.id, "category": item.category, "style": item.style, "prompt": item.prompt, "answer": answer, "refused": flag})
    for row, answer, verdict in zip(red_rows, red_answers, verdicts["redteam"]):
        records.append({"set": "redteam", "id": row["id"], "seed_id": row["seed_id"], "prompt": row["prompt"], "answer": answer,
                        "verdict": verdict.label, "offGoal": row["offGoal"], "perplexity": row["perplexity"]})
    for context, items in per_context.items():
        for item in items:
            records.append({"set": "knowledge", "id": item.id, "context": context, "correct": item.correct, "correctNorm": item.correct_norm,
                            "probability": round(item.probability, 4), "entropy": round(item.entropy, 4), "perplexity": round(item.perplexity, 4)})
    for context, answers in generated.items():
        for answer in answers:
            records.append({"set": "knowledge-chat", "id": answer.id, "context": context, "answer": answer.answer, "correct": answer.correct,
                            "perplexity": answer.perplexity, "entropy": answer.entropy, "topProbability": answer.top_probability})
    path = write_jsonl(Path(cfg.outputDir) / "records.jsonl", records)

    level = 1 - confidence
    adversarial = verdicts["adversarial"]
    by_context = {context: mean_knowledge(items, confidence, mean_generation(generated[context], confidence) if context in generated else None)
                  for context, items in per_context.items()}
    main = "none" if "none" in by_context else next(iter(by_context))
    return EvaluateResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1),
        directASR=asr(count(verdicts["direct"]), confidence), adversarialASR=asr(count(adversarial), confidence),
        sampledASR=asr(count(verdicts["sampled"]), confidence) if sampled else None,
        contrastRefusal=rate(refused["contrast"], confidence), benignRefusal=rate(refused["benign"], confidence),
        redteamASR=redteam_success(verdicts["redteam"], [row["offGoal"] for row in red_rows], confidence) if red_rows else None,
        judgeErrors=error_rate(count(verdicts["direct"] + adversarial), confidence),
        byCategory=asr_by([i.category for i in sets["adversarial"]], adversarial, confidence),
        byStyle=asr_by([i.style for i in sets["adversarial"]], adversarial, confidence),
        knowledge=by_context[main], knowledgeByContext=by_context,
        regression=_paired(previous, records, lambda rows: unsafe_by_item(rows, JUDGED_SETS), level),
        accuracyChange=_paired(baseline, records, lambda rows: wrong_by_item(rows, main), level),
        judge=judge.info, records=str(path),
    )
