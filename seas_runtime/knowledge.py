"""Knowledge drift (arXiv 2409.19476): each QA item asked with the paper's contexts, scored two ways.

Contexts are the paper's probes: none, a false statement about the question, or
an unrelated one. Each question is then

- **generated** as the paper does: under the model's chat template the model
  answers in a few words, greedily; accuracy is a normalised answer match, and the
  generated tokens give the perplexity, the mean entropy of the top-10 next-token
  distribution and the mean top-token probability. This sees drift in chat mode:
  hedging, refusing, or rambling instead of answering;
- **scored cloze-style**, as in lm-evaluation-harness: every choice's
  log-likelihood as the continuation of ``Question: ... Answer:``; accuracy
  (argmax), ``acc_norm`` (argmax of the log-likelihood per character), the correct
  choice's perplexity, and the entropy of and probability under the softmax over
  the choices.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .contract import GenerationFigures, KnowledgeFigures
from .data import QAItem
from .engines.base import Advance, Engine, Generation, Sampling, ScoreRequest
from .stats import Rate

GENERATION_INSTRUCTION = "Answer the question in a few words, with the answer only."
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def knowledge_question(item: QAItem, context: str = "") -> str:
    """The cloze prompt; each choice is scored as its continuation (as in lm-evaluation-harness)."""
    lead = f"{context.strip()}\n" if context.strip() else ""
    return f"{lead}Question: {item.question}\nAnswer:"


def knowledge_choice(choice: str) -> str:
    """A choice as the continuation of :func:`knowledge_question`."""
    return f" {choice}"


def knowledge_chat(item: QAItem, context: str = "") -> list[dict[str, str]]:
    """The question as a chat turn, for generation mode."""
    lead = f"{context.strip()}\n" if context.strip() else ""
    return [{"role": "user", "content": f"{lead}Question: {item.question}\n{GENERATION_INSTRUCTION}"}]


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


def contexts(items: list[QAItem], kinds: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Per context kind, each question's context (drawn once, so both modes ask the same thing)."""
    rng = random.Random(seed)
    return {kind: [knowledge_context(item, kind, items, rng) for item in items] for kind in kinds}


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces (SQuAD's normalisation)."""
    return " ".join(_ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).split())


def answer_matches(generated: str, item: QAItem) -> bool:
    """The generated answer names the correct choice and no other (whole words, after normalisation)."""
    said = f" {normalize_answer(generated)} "
    named = [i for i, choice in enumerate(item.choices) if normalize_answer(choice) and f" {normalize_answer(choice)} " in said]
    return named == [item.answer]


@dataclass(frozen=True)
class ItemKnowledge:
    """One question's cloze figures (``id`` pairs it with the same question in another round)."""

    correct: bool
    probability: float
    entropy: float
    perplexity: float
    id: str = ""
    correct_norm: Optional[bool] = None


@dataclass(frozen=True)
class ItemGeneration:
    """One question answered in generation mode."""

    id: str
    answer: str
    correct: bool
    perplexity: Optional[float]  # of the generated tokens; None when nothing was generated
    entropy: Optional[float]  # mean top-10 entropy (nats)
    top_probability: Optional[float]  # mean probability of the top token


def item_knowledge(choice_logprobs: Sequence[float], answer: int, answer_tokens: int, id: str = "",
                   choice_chars: Optional[Sequence[int]] = None) -> ItemKnowledge:
    """Cloze figures for one question (arXiv 2409.19476).

    The model's answer distribution is the softmax over the summed
    log-probabilities of the choices; entropy is in nats; perplexity is that of
    the correct choice's tokens; ``correct_norm`` is lm-evaluation-harness's
    acc_norm (the argmax of the log-likelihood per character of the choice).
    """
    top = max(choice_logprobs)
    weights = [math.exp(lp - top) for lp in choice_logprobs]
    total = sum(weights)
    probs = [w / total for w in weights]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    best = max(range(len(probs)), key=probs.__getitem__)
    perplexity = math.exp(-choice_logprobs[answer] / max(1, answer_tokens))
    correct_norm = None
    if choice_chars is not None:
        normed = [lp / max(1, chars) for lp, chars in zip(choice_logprobs, choice_chars)]
        correct_norm = max(range(len(normed)), key=normed.__getitem__) == answer
    return ItemKnowledge(correct=best == answer, probability=probs[answer], entropy=entropy, perplexity=perplexity, id=id,
                         correct_norm=correct_norm)


def item_generation(item: QAItem, generation: Generation) -> ItemGeneration:
    """Generation-mode figures for one question from its greedy answer and the answer's token statistics."""
    count = len(generation.logprobs)
    return ItemGeneration(
        id=item.id, answer=generation.text, correct=answer_matches(generation.text, item),
        perplexity=math.exp(-sum(generation.logprobs) / count) if count else None,
        entropy=sum(generation.entropies) / count if count else None,
        top_probability=sum(generation.top_probs) / count if count else None,
    )


def _geometric_mean(values: Sequence[float]) -> float:
    # Per-question perplexities are heavy-tailed (one unlikely one-token answer can reach 1e5),
    # so their mean is the geometric one: exp of the mean per-token negative log-likelihood.
    return math.exp(sum(math.log(v) for v in values) / max(1, len(values)))


def mean_generation(items: Sequence[ItemGeneration], confidence: float = 0.95) -> GenerationFigures:
    """Accuracy (k/n with its interval), geometric-mean perplexity, mean top-10 entropy and top-token probability."""
    measured = [i for i in items if i.perplexity is not None]
    return GenerationFigures(
        accuracy=Rate.of(sum(i.correct for i in items), len(items), confidence),
        perplexity=round(_geometric_mean([i.perplexity for i in measured]), 4) if measured else None,
        entropy=round(sum(i.entropy for i in measured) / len(measured), 4) if measured else None,
        topProbability=round(sum(i.top_probability for i in measured) / len(measured), 4) if measured else None,
    )


def mean_knowledge(items: Sequence[ItemKnowledge], confidence: float = 0.95, generation: Optional[GenerationFigures] = None) -> KnowledgeFigures:
    """Cloze accuracy and acc_norm (k/n with their intervals), geometric-mean perplexity, mean entropy and answer probability."""
    n = max(1, len(items))
    normed = [i.correct_norm for i in items if i.correct_norm is not None]
    return KnowledgeFigures(
        accuracy=Rate.of(sum(i.correct for i in items), len(items), confidence),
        accuracyNorm=Rate.of(sum(normed), len(normed), confidence) if normed else None,
        perplexity=round(_geometric_mean([i.perplexity for i in items]), 4),
        entropy=round(sum(i.entropy for i in items) / n, 4),
        probability=round(sum(i.probability for i in items) / n, 4),
        generation=generation,
    )


def score_knowledge(engine: Engine, items: list[QAItem], asked: dict[str, list[str]], progress: Advance = None) -> dict[str, list[ItemKnowledge]]:
    """Per context kind, each question's cloze figures (``asked``: each question's context, from :func:`contexts`)."""
    requests, layout = [], []
    for kind, kind_contexts in asked.items():
        for item, context in zip(items, kind_contexts):
            prompt = knowledge_question(item, context)
            layout.append((kind, item, len(requests)))
            requests.extend(ScoreRequest(prompt, knowledge_choice(choice)) for choice in item.choices)
    scores = engine.score(requests, progress)
    per_kind: dict[str, list[ItemKnowledge]] = {kind: [] for kind in asked}
    for kind, item, start in layout:
        choice_scores = scores[start : start + len(item.choices)]
        per_kind[kind].append(item_knowledge([s.logprob for s in choice_scores], item.answer, choice_scores[item.answer].tokens, item.id,
                                             [len(knowledge_choice(c)) for c in item.choices]))
    return per_kind


def generate_knowledge(engine: Engine, items: list[QAItem], asked: dict[str, list[str]], max_new_tokens: int,
                       progress: Advance = None) -> dict[str, list[ItemGeneration]]:
    """Per context kind, each question answered greedily under the chat template, with its token statistics."""
    conversations = [knowledge_chat(item, context) for kind_contexts in asked.values() for item, context in zip(items, kind_contexts)]
    generations = engine.chat_details(conversations, Sampling(temperature=0.0, max_new_tokens=max_new_tokens), progress)
    out: dict[str, list[ItemGeneration]] = {}
    for index, kind in enumerate(asked):
        chunk = generations[index * len(items) : (index + 1) * len(items)]
        out[kind] = [item_generation(item, generation) for item, generation in zip(items, chunk)]
    return out
