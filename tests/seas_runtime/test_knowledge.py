"""Knowledge drift: cloze prompts, contexts, per-item figures and their means (arXiv 2409.19476)."""

from __future__ import annotations

import math

import pytest
import torch

from seas_runtime.data import load
from seas_runtime.engines.base import Generation
from seas_runtime.engines.decoding import token_stats
from seas_runtime.knowledge import (
    ItemGeneration,
    ItemKnowledge,
    answer_matches,
    contexts,
    item_generation,
    item_knowledge,
    knowledge_context,
    mean_generation,
    mean_knowledge,
    normalize_answer,
    score_knowledge,
)
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
    per_context = score_knowledge(_Scorer(), qa, contexts(qa, ["none", "false"], seed=0))
    assert list(per_context) == ["none", "false"]
    assert [i.id for i in per_context["none"]] == ["qa-001", "qa-002"]
    assert [i.correct for i in per_context["none"]] == [True, False]  # Paris is qa-001's answer, not qa-002's



# --- generation mode (arXiv 2409.19476) --------------------------------------------


def test_both_modes_ask_with_the_same_drawn_context():
    qa = load("knowledge")[:5]
    asked = contexts(qa, ["none", "false", "random"], seed=3)
    assert asked["none"] == [""] * 5 and asked["false"] == [q.false_context for q in qa]
    assert asked == contexts(qa, ["none", "false", "random"], seed=3)  # drawn from the seed


@pytest.mark.parametrize("answer, correct", [
    ("Paris", True), ("The answer is Paris.", True), ("paris!", True), ("PARIS", True),
    ("Lyon", False), ("Paris or Lyon", False),  # naming another choice too is not an answer
    ("I'm sorry, I can't answer that.", False), ("", False), ("Parisian food", False),  # whole words only
])
def test_answer_match_is_normalised_and_exclusive(answer, correct):
    item = next(q for q in load("knowledge") if q.id == "qa-001")  # capital of France: Paris, Lyon, Marseille, Nice
    assert answer_matches(answer, item) is correct


def test_normalize_answer():
    assert normalize_answer("  The  Eiffel-Tower, of course! ") == "eiffel tower of course"


def test_token_stats_on_hand_computed_logits():
    # Two steps' logits over a 12-token vocabulary: one peaked, one flat over the top 10.
    peaked = torch.full((12,), -10.0)
    peaked[3] = 0.0
    flat = torch.tensor([1.0] * 10 + [-1e9, -1e9])
    stats = token_stats(torch.stack([peaked, flat]), torch.tensor([3, 7]))
    (lp0, h0, top0), (lp1, h1, top1) = stats
    p = 1 / (1 + 11 * math.exp(-10))  # softmax of the peaked row at its top
    assert lp0 == pytest.approx(math.log(p), abs=1e-6) and top0 == pytest.approx(p, abs=1e-6)
    top10 = [p] + [math.exp(-10) * p] * 9
    norm = [x / sum(top10) for x in top10]
    assert h0 == pytest.approx(-sum(x * math.log(x) for x in norm), abs=1e-6)
    assert lp1 == pytest.approx(math.log(0.1), abs=1e-6) and top1 == pytest.approx(0.1, abs=1e-6)
    assert h1 == pytest.approx(math.log(10), abs=1e-6)  # uniform over the top 10


def test_generation_figures_of_one_answer_and_their_means():
    item = next(q for q in load("knowledge") if q.id == "qa-001")
    answer = item_generation(item, Generation("Paris.", logprobs=(math.log(0.5), math.log(0.25)), entropies=(1.0, 2.0), top_probs=(0.5, 0.3)))
    assert answer.correct and answer.perplexity == pytest.approx(math.sqrt(8)) and answer.entropy == 1.5 and answer.top_probability == 0.4
    silent = item_generation(item, Generation("", (), (), ()))
    assert not silent.correct and silent.perplexity is None
    figures = mean_generation([answer, silent, ItemGeneration("x", "Lyon", False, 2.0, 0.5, 0.8)])
    assert figures.accuracy == Rate.of(1, 3)
    assert figures.perplexity == pytest.approx(math.sqrt(math.sqrt(8) * 2), abs=1e-4)  # geometric mean of the measured answers
    assert figures.entropy == 1.0 and figures.topProbability == 0.6


def test_acc_norm_prefers_the_likelier_choice_per_character():
    # The long correct choice has the lower total log-likelihood but the higher one per character.
    item = item_knowledge([-6.0, -4.0], answer=0, answer_tokens=3, choice_chars=[30, 5])
    assert item.correct is False and item.correct_norm is True
    assert mean_knowledge([item]).accuracyNorm == Rate.of(1, 1)
