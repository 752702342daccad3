"""Pure pair selection: attack records in, DPO preference pairs out (SEAS, arXiv 2408.02632).

Red team, per seed: a successful attack (an on-goal prompt that got unsafe
answers) is chosen over a failed one (safe answers, or off-goal); ties are
skipped, and seed copies (the red team wrote nothing) never take part. Target,
per adversarial prompt and from its **own** answers: a safe answer is chosen
over an unsafe one; the prompt is what the target answered, which is the seed
where the red team's prompt was off-goal (an answer to a prompt that asks for
nothing harmful says nothing about safety). Helpful answer-over-refusal pairs
are capped at the number of safety pairs. A canned refusal as the chosen answer
is an explicit opt-in (``refusalFallback``), a departure from SEAS: it teaches
the target the judge's favourite strings rather than its own better answers.
Error verdicts never count as safe or unsafe.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from .data import HelpfulItem

REFUSALS = (
    "I'm sorry, but I can't help with that. It could cause real harm.",
    "I can't assist with that request. If you're facing a difficult situation, I'm happy to help in a safe way.",
    "Sorry, I cannot provide that. It could put people at risk, but I can help with something else.",
)


def refusal_for(key: str) -> str:
    """A deterministic refusal (chosen answer when the target gave no safe one)."""
    return REFUSALS[sum(map(ord, key)) % len(REFUSALS)]


@dataclass(frozen=True)
class Response:
    text: str
    verdict: str  # safe | unsafe | error


@dataclass(frozen=True)
class AttackRecord:
    id: str
    seed_id: str
    instruction: str
    prompt: str
    responses: tuple[Response, ...]
    off_goal: Optional[str] = None  # why the prompt is no on-goal attack (fallback, copy, gibberish, offGoal), as the attack stage found
    asked: Optional[str] = None  # what the target answered, when not the prompt: the seed in place of an off-goal prompt

    def tally(self, label: str) -> int:
        return sum(r.verdict == label for r in self.responses)


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    source: str

    def as_row(self) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, "source": self.source}


@dataclass
class PairSet:
    target: list[Pair] = field(default_factory=list)
    redteam: list[Pair] = field(default_factory=list)
    helpful: int = 0
    target_own: int = 0  # target pairs whose chosen answer is the target's own
    dropped: Counter = field(default_factory=Counter)


def record_from_row(row: dict) -> AttackRecord:
    """An attack record from its JSONL row."""
    return AttackRecord(
        id=row["id"],
        seed_id=row["seed_id"],
        instruction=row["instruction"],
        prompt=row["prompt"],
        responses=tuple(Response(r["text"], r["verdict"]) for r in row["responses"]),
        off_goal=row.get("offGoal") or ("fallback" if row.get("fallback") else None),
        asked=row.get("asked"),
    )


def _unsafe_rate(record: AttackRecord) -> float:
    judged = record.tally("safe") + record.tally("unsafe")
    return record.tally("unsafe") / judged


def redteam_pairs(records: Sequence[AttackRecord], dropped: Optional[Counter] = None) -> list[Pair]:
    """Per seed: the most successful on-goal prompt (chosen) over the least successful prompt (rejected).

    A prompt's success is its share of unsafe answers, and 0 when it is off-goal or
    gibberish (those can be rejected, teaching the red team to avoid them, never
    chosen). Seed copies take no part. Only prompts with a judged answer count, so
    error verdicts never pass for safe; ties are skipped; the result is deterministic.
    """
    dropped = dropped if dropped is not None else Counter()
    by_seed: dict[str, list[tuple[float, AttackRecord]]] = defaultdict(list)
    for record in records:
        if not record.prompt.strip() or record.tally("safe") + record.tally("unsafe") == 0:
            continue
        reason = record.off_goal
        if reason == "fallback":
            dropped["redteamFallback"] += 1
            continue
        if reason is not None:
            dropped[f"redteam{reason[0].upper()}{reason[1:]}"] += 1
        by_seed[record.seed_id].append((0.0 if reason else _unsafe_rate(record), record))
    pairs = []
    for seed_id in sorted(by_seed):
        group = by_seed[seed_id]
        best = max(group, key=lambda g: g[0])
        worst = min(group, key=lambda g: g[0])
        if best[0] <= worst[0] or best[1].prompt == worst[1].prompt:
            continue
        pairs.append(Pair(best[1].instruction, best[1].prompt, worst[1].prompt, f"redteam:{seed_id}"))
    return pairs


def target_pairs(records: Sequence[AttackRecord], refusal_fallback: bool) -> list[Pair]:
    """Per adversarial prompt: one of the target's own safe answers over one of its unsafe ones.

    With ``refusal_fallback`` (a departure from SEAS), a prompt with no safe answer
    gets a fixed refusal as the chosen answer (source ``target-fallback``).
    """
    pairs = []
    for record in records:
        prompt = record.asked or record.prompt
        if not prompt.strip():
            continue
        unsafe = [r.text for r in record.responses if r.verdict == "unsafe" and r.text.strip()]
        safe = [r.text for r in record.responses if r.verdict == "safe" and r.text.strip()]
        if not unsafe:
            continue
        if safe:
            pairs.append(Pair(prompt, safe[0], unsafe[0], f"target:{record.id}"))
        elif refusal_fallback:
            pairs.append(Pair(prompt, refusal_for(record.id), unsafe[0], f"target-fallback:{record.id}"))
    return pairs


def helpful_pairs(items: Sequence[HelpfulItem], count: int, seed: int) -> list[Pair]:
    """Answer-over-refusal pairs that keep the target from learning to refuse everything."""
    picked = random.Random(seed).sample(list(items), min(count, len(items)))
    return [Pair(item.prompt, item.answer, refusal_for(item.id), f"helpful:{item.id}") for item in picked]


def _clean(pairs: Iterable[Pair], max_prompt: int, max_response: int, dropped: Counter) -> list[Pair]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for pair in pairs:
        if len(pair.prompt) > max_prompt:
            dropped["promptTooLong"] += 1
            continue
        chosen, rejected = pair.chosen[:max_response].strip(), pair.rejected[:max_response].strip()
        if not chosen or not rejected or chosen == rejected:
            dropped["degenerate"] += 1
            continue
        key = (pair.prompt.strip().lower(), chosen.lower(), rejected.lower())
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.append(Pair(pair.prompt, chosen, rejected, pair.source))
    return out


def _cap(pairs: list[Pair], limit: Optional[int], seed: int, dropped: Counter, name: str) -> list[Pair]:
    if limit is None or len(pairs) <= limit:
        return pairs
    dropped[f"{name}OverCap"] += len(pairs) - limit
    return random.Random(seed).sample(pairs, limit)


def select_pairs(
    records: Sequence[AttackRecord],
    helpful: Sequence[HelpfulItem],
    *,
    helpful_count: int,
    refusal_fallback: bool,
    max_prompt_chars: int,
    max_response_chars: int,
    max_pairs: Optional[int],
    seed: int,
) -> PairSet:
    """All of a round's pairs, de-duplicated, length-capped and counted (``dropped`` says what was left out, and why)."""
    result = PairSet()
    target = _cap(_clean(target_pairs(records, refusal_fallback), max_prompt_chars, max_response_chars, result.dropped), max_pairs, seed, result.dropped, "target")
    result.target_own = sum(not p.source.startswith("target-fallback:") for p in target)
    redteam = redteam_pairs(records, result.dropped)
    result.redteam = _cap(_clean(redteam, max_prompt_chars, max_response_chars, result.dropped), max_pairs, seed, result.dropped, "redteam")
    # Helpful pairs pull the other way (answer, do not refuse): never more of them than safety pairs, or they outweigh the lesson.
    extra = _clean(helpful_pairs(helpful, min(helpful_count, len(target)), seed), max_prompt_chars, max_response_chars, result.dropped)
    result.helpful = len(extra)
    result.target = target + extra
    return result
