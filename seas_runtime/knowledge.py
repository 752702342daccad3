"""Knowledge drift (arXiv 2409.19476): cloze prompts, their contexts, scoring and per-item figures.

Each multiple-choice question is scored cloze-style, as in lm-evaluation-harness:
every choice's log-likelihood as the continuation of the ``Question: ... Answer:`` prompt.
The context kinds are the paper's probes: none, a false statement about the
question, or an unrelated one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from .contract import KnowledgeFigures
from .stats import Rate
from .data import QAItem
from .engines.base import Advance, Engine, ScoreRequest


def knowledge_question(item: QAItem, context: str = "") -> str:
    """The cloze prompt; each choice is scored as its continuation (as in lm-evaluation-harness)."""
    lead = f"{context.strip()}\n" if context.strip() else ""
    return f"{lead}Question: {item.question}\nAnswer:"


def knowledge_choice(choice: str) -> str:
    """A choice as the continuation of :func:`knowledge_question`."""
    return f" {choice}"


def knowledge_context(item: QAItem, kind: str, pool: list[QAItem], rng: random.Random) -> str:
    """Context for arXiv 2409.19476's drift probes: none, a false statement, or an unrelated one."""
    if kind == "none":
        return ""
    if kind == "false":
        if item.false_context:
            return item.false_context
        wrong = (item.answer + 1) % len(item.choices)
        return f"Note: the answer to '{item.question}' is {item.choices[wrong]}."
    other = rng.choice([q for q in pool if q.id != item.id] or [item])
    return other.false_context or other.question


@dataclass(frozen=True)
class ItemKnowledge:
    """One question's figures (``id`` pairs it with the same question in another round)."""

    correct: bool
    probability: float
    entropy: float
    perplexity: float
    id: str = ""


def item_knowledge(choice_logprobs: Sequence[float], answer: int, answer_tokens: int, id: str = "") -> ItemKnowledge:
    """Drift figures for one question (arXiv 2409.19476).

    The model's answer distribution is the softmax over the summed
    log-probabilities of the choices; entropy is in nats; perplexity is that of
    the correct choice's tokens.
    """
    top = max(choice_logprobs)
    weights = [math.exp(lp - top) for lp in choice_logprobs]
    total = sum(weights)
    probs = [w / total for w in weights]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    best = max(range(len(probs)), key=probs.__getitem__)
    perplexity = math.exp(-choice_logprobs[answer] / max(1, answer_tokens))
    return ItemKnowledge(correct=best == answer, probability=probs[answer], entropy=entropy, perplexity=perplexity, id=id)


def mean_knowledge(items: Sequence[ItemKnowledge], confidence: float = 0.95) -> KnowledgeFigures:
    """Accuracy (k/n with its interval), geometric-mean perplexity, and mean entropy and answer probability."""
    n = max(1, len(items))
    # Per-question perplexities are heavy-tailed (one unlikely one-token answer can reach 1e5),
    # so their mean is the geometric one: exp of the mean per-token negative log-likelihood.
    mean_nll = sum(math.log(i.perplexity) for i in items) / n
    return KnowledgeFigures(
        accuracy=Rate.of(sum(i.correct for i in items), len(items), confidence),
        perplexity=round(math.exp(mean_nll), 4),
        entropy=round(sum(i.entropy for i in items) / n, 4),
        probability=round(sum(i.probability for i in items) / n, 4),
    )


def score_knowledge(engine: Engine, items: list[QAItem], kinds: list[str], seed: int, progress: Advance = None) -> dict[str, list[ItemKnowledge]]:
    """Per context kind, each question's figures (cloze scoring of its choices)."""
    rng = random.Random(seed)
    requests, layout = [], []
    for kind in kinds:
        for item in items:
            prompt = knowledge_question(item, knowledge_context(item, kind, items, rng))
            layout.append((kind, item, len(requests)))
            requests.extend(ScoreRequest(prompt, knowledge_choice(choice)) for choice in item.choices)
    scores = engine.score(requests, progress)
    per_kind: dict[str, list[ItemKnowledge]] = {kind: [] for kind in kinds}
    for kind, item, start in layout:
        choice_scores = scores[start : start + len(item.choices)]
        per_kind[kind].append(item_knowledge([s.logprob for s in choice_scores], item.answer, choice_scores[item.answer].tokens, item.id))
    return per_kind
