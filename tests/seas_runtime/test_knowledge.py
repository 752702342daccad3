"""Knowledge drift: cloze prompts, contexts, per-item figures and their means (arXiv 2409.19476)."""

from __future__ import annotations

import math

import pytest

from seas_runtime.data import load
from seas_runtime.knowledge import ItemKnowledge, item_knowledge, knowledge_context, mean_knowledge, score_knowledge
from seas_runtime.stats import Rate


def test_knowledge_contexts():
    import random

    qa = load("knowledge")
    item = qa[0]
    assert knowledge_context(item, "none", qa, random.Random(0)) == ""
    false = knowledge_context(item, "false", qa, random.Random(0))
    assert false == item.false_context
    random_context = knowledge_context(item, "random", qa, random.Random(0))
    assert random_context and random_context != item.false_context


# --- knowledge figures ------------------------------------------------------------


def test_uniform_choices_have_entropy_ln_n_and_probability_one_over_n():
    item = item_knowledge([-2.0, -2.0, -2.0, -2.0], answer=2, answer_tokens=1)
    assert item.entropy == pytest.approx(math.log(4))
    assert item.probability == pytest.approx(0.25)


def test_softmax_over_summed_choice_logprobs():
    logprobs = [math.log(0.6), math.log(0.2), math.log(0.1), math.log(0.1)]
    item = item_knowledge(logprobs, answer=0, answer_tokens=1)
    assert item.correct is True
    assert item.probability == pytest.approx(0.6)
    expected_entropy = -(0.6 * math.log(0.6) + 0.2 * math.log(0.2) + 2 * 0.1 * math.log(0.1))
    assert item.entropy == pytest.approx(expected_entropy)


def test_softmax_normalizes_logprobs_that_do_not_sum_to_one():
    # Continuations' log-probabilities are not a distribution over the choices.
    item = item_knowledge([-10.0, -11.0], answer=1, answer_tokens=2)
    assert item.probability == pytest.approx(1 / (1 + math.e))
    assert item.correct is False


def test_softmax_is_stable_for_very_negative_logprobs():
    item = item_knowledge([-1000.0, -1001.0, -1002.0], answer=0, answer_tokens=3)
    assert item.correct
    assert 0.0 < item.probability < 1.0
    assert math.isfinite(item.entropy)


def test_certain_answer_has_zero_entropy():
    item = item_knowledge([0.0, -1e6, -1e6, -1e6], answer=0, answer_tokens=1)
    assert item.entropy == pytest.approx(0.0, abs=1e-9)
    assert item.probability == pytest.approx(1.0)


def test_perplexity_of_the_correct_choice_tokens():
    item = item_knowledge([-3.0, -1.0, -5.0], answer=0, answer_tokens=3)
    assert item.perplexity == pytest.approx(math.exp(1.0))  # exp(-(-3)/3)
    assert item.correct is False  # choice 1 is the most likely


def test_perplexity_with_zero_tokens_does_not_divide_by_zero():
    item = item_knowledge([-2.0, -3.0], answer=0, answer_tokens=0)
    assert item.perplexity == pytest.approx(math.exp(2.0))


def test_mean_knowledge_averages_and_takes_the_geometric_mean_of_perplexity():
    items = [
        ItemKnowledge(correct=True, probability=0.8, entropy=0.5, perplexity=2.0),
        ItemKnowledge(correct=False, probability=0.2, entropy=1.5, perplexity=8.0),
        ItemKnowledge(correct=True, probability=0.5, entropy=1.0, perplexity=1.0),
        ItemKnowledge(correct=True, probability=0.5, entropy=1.0, perplexity=4.0),
    ]
    result = mean_knowledge(items)
    assert result.accuracy == Rate.of(3, 4)
    assert result.entropy == 1.0
    assert result.probability == 0.5
    # exp(mean(log ppl)) = (2 * 8 * 1 * 4) ** (1/4) = 64 ** 0.25
    assert result.perplexity == pytest.approx(64 ** 0.25, abs=1e-4)


def test_mean_perplexity_is_not_dominated_by_one_outlier():
    items = [ItemKnowledge(True, 0.9, 0.1, 1.5)] * 9 + [ItemKnowledge(False, 0.0, 0.1, 1e5)]
    assert mean_knowledge(items).perplexity < 10


def test_mean_perplexity_matches_the_items_perplexity():
    item = item_knowledge([-3.0, -1.0, -5.0], answer=0, answer_tokens=3)
    assert mean_knowledge([item, item]).perplexity == pytest.approx(item.perplexity, abs=1e-4)


def test_mean_knowledge_rounds_to_four_digits():
    items = [ItemKnowledge(True, 1 / 3, 1 / 3, 1.0), ItemKnowledge(False, 0.0, 0.0, 1.0), ItemKnowledge(False, 0.0, 0.0, 1.0)]
    result = mean_knowledge(items)
    assert result.accuracy.rate == 0.3333
    assert result.probability == 0.1111
    assert result.entropy == 0.1111


class _Scorer:
    """Scores each continuation by a fixed table: the choice 'Paris' is the likeliest."""

    def score(self, requests, progress=None):
        from seas_runtime.engines.base import ContinuationScore

        if progress:
            progress(len(requests))
        return [ContinuationScore(logprob=-0.1 if r.continuation == " Paris" else -3.0, tokens=1) for r in requests]


def test_score_knowledge_asks_every_question_in_every_context_and_keeps_ids():
    qa = [q for q in load("knowledge") if q.id in ("qa-001", "qa-002")]
    per_context = score_knowledge(_Scorer(), qa, ["none", "false"], seed=0)
    assert list(per_context) == ["none", "false"]
    assert [i.id for i in per_context["none"]] == ["qa-001", "qa-002"]
    assert [i.correct for i in per_context["none"]] == [True, False]  # Paris is qa-001's answer, not qa-002's
