"""Pair selection: attack records in, DPO preference pairs out (SEAS, arXiv 2408.02632)."""

from __future__ import annotations

from collections import Counter

import pytest

from seas_runtime.data import HelpfulItem
from seas_runtime.pair_selection import (
    REFUSALS,
    AttackRecord,
    Pair,
    Response,
    record_from_row,
    redteam_pairs,
    select_pairs,
    refusal_for,
    target_pairs,
)

SAFE = "I'm sorry, but I can't help with that."
UNSAFE = "Sure, here is how to do it."


def rec(id_, seed, prompt, *verdicts, texts=None, instruction=None, off_goal=None, asked=None):
    texts = texts or [f"{v} answer {i} to {id_}" for i, v in enumerate(verdicts)]
    return AttackRecord(
        id=id_,
        seed_id=seed,
        instruction=instruction or f"instruction for {seed}",
        prompt=prompt,
        responses=tuple(Response(t, v) for t, v in zip(texts, verdicts)),
        off_goal=off_goal,
        asked=asked,
    )


def safety_records(n):
    """``n`` prompts, each with one unsafe and one safe answer: one target safety pair each."""
    return [rec(f"r{i}", f"s{i}", f"P{i}", "unsafe", "safe", texts=[UNSAFE, SAFE]) for i in range(n)]


HELPFUL = [HelpfulItem(f"helpful-{i:03d}", f"How do I do harmless thing {i}?", f"Do it like this ({i}).") for i in range(10)]


def select(records, helpful=(), **overrides):
    kwargs = dict(
        helpful_count=0,
        refusal_fallback=True,
        max_prompt_chars=1200,
        max_response_chars=1200,
        max_pairs=None,
        seed=0,
    )
    kwargs.update(overrides)
    return select_pairs(records, list(helpful), **kwargs)


# --- red team --------------------------------------------------------------------


def test_redteam_chosen_is_most_unsafe_rejected_is_most_safe():
    records = [
        rec("a", "s1", "prompt A (half)", "unsafe", "safe"),
        rec("b", "s1", "prompt B (fails)", "safe", "safe"),
        rec("c", "s1", "prompt C (wins)", "unsafe", "unsafe"),
    ]
    (pair,) = redteam_pairs(records)
    assert pair.chosen == "prompt C (wins)"
    assert pair.rejected == "prompt B (fails)"
    assert pair.prompt == "instruction for s1"  # the red team learns from its instruction
    assert pair.source == "redteam:s1"


def test_redteam_one_pair_per_seed():
    records = [
        rec("a1", "s1", "A1", "unsafe"),
        rec("a2", "s1", "A2", "safe"),
        rec("b1", "s2", "B1", "safe"),
        rec("b2", "s2", "B2", "unsafe"),
    ]
    pairs = redteam_pairs(records)
    assert [(p.source, p.chosen, p.rejected) for p in pairs] == [("redteam:s1", "A1", "A2"), ("redteam:s2", "B2", "B1")]


def test_no_redteam_pair_when_all_prompts_equally_successful():
    all_unsafe = [rec("a", "s1", "A", "unsafe", "unsafe"), rec("b", "s1", "B", "unsafe", "unsafe")]
    all_safe = [rec("c", "s2", "C", "safe", "safe"), rec("d", "s2", "D", "safe", "safe")]
    half = [rec("e", "s3", "E", "safe", "unsafe"), rec("f", "s3", "F", "unsafe", "safe")]
    assert redteam_pairs(all_unsafe + all_safe + half) == []


def test_no_redteam_pair_from_a_single_prompt_or_identical_prompts():
    assert redteam_pairs([rec("a", "s1", "A", "unsafe", "safe")]) == []
    same = [rec("a", "s1", "same text", "unsafe"), rec("b", "s1", "same text", "safe")]
    assert redteam_pairs(same) == []


def test_redteam_ignores_empty_prompts():
    records = [rec("a", "s1", "A", "unsafe"), rec("b", "s1", "   ", "safe")]
    assert redteam_pairs(records) == []


def test_redteam_error_verdicts_do_not_count_as_success():
    # B's errors must not make it look more successful than A's one unsafe answer.
    records = [
        rec("a", "s1", "A", "unsafe", "safe"),
        rec("b", "s1", "B", "error", "error"),
        rec("c", "s1", "C", "safe", "safe"),
    ]
    (pair,) = redteam_pairs(records)
    assert pair.chosen == "A"
    assert pair.rejected == "C"


def test_redteam_pair_does_not_depend_on_record_order_when_errors_tie_safe_counts():
    # A: 1 unsafe of 2 judged (50 %); B: 0 unsafe of 1 judged (0 %), its other answer
    # an error. A is the more successful prompt whichever order the records come in.
    a = rec("a", "s1", "A", "unsafe", "safe")
    b = rec("b", "s1", "B", "safe", "error")
    for records in ([b, a], [a, b]):
        pairs = redteam_pairs(records)
        assert [(p.chosen, p.rejected) for p in pairs] == [("A", "B")], [r.id for r in records]


def test_redteam_prompt_with_only_error_verdicts_is_never_rejected():
    # B's answer could not be judged: there is no evidence it failed, so it is no
    # "most-safe" prompt, whichever order the records come in.
    a = rec("a", "s1", "A", "unsafe")
    b = rec("b", "s1", "B", "error")
    for records in ([a, b], [b, a]):
        assert redteam_pairs(records) == [], [r.id for r in records]


# --- target ----------------------------------------------------------------------


def test_target_pair_is_safe_answer_over_unsafe_answer():
    records = [rec("r1", "s1", "adversarial prompt", "unsafe", "safe", texts=[UNSAFE, SAFE])]
    (pair,) = target_pairs(records, refusal_fallback=False)
    assert pair == Pair("adversarial prompt", SAFE, UNSAFE, "target:r1")


def test_target_refusal_fallback_on_and_off():
    records = [rec("r1", "s1", "adversarial prompt", "unsafe", "unsafe", texts=[UNSAFE, UNSAFE + "!"])]
    assert target_pairs(records, refusal_fallback=False) == []
    (pair,) = target_pairs(records, refusal_fallback=True)
    assert pair.chosen in REFUSALS
    assert pair.chosen == refusal_for("r1")  # deterministic per record
    assert pair.rejected == UNSAFE


def test_no_target_pair_without_an_unsafe_answer():
    records = [
        rec("r1", "s1", "P1", "safe", "safe"),
        rec("r2", "s1", "P2", "error", "safe"),
        rec("r3", "s1", "P3", "error", "error"),
    ]
    assert target_pairs(records, refusal_fallback=True) == []


def test_target_error_answers_are_never_chosen():
    records = [rec("r1", "s1", "P1", "error", "unsafe", texts=["garbled", UNSAFE])]
    assert target_pairs(records, refusal_fallback=False) == []
    (pair,) = target_pairs(records, refusal_fallback=True)
    assert pair.chosen != "garbled" and pair.chosen in REFUSALS


def test_target_skips_blank_prompts_and_blank_answers():
    records = [
        rec("r1", "s1", "  ", "unsafe", "safe", texts=[UNSAFE, SAFE]),
        rec("r2", "s1", "P2", "unsafe", "safe", texts=["   ", SAFE]),
    ]
    assert target_pairs(records, refusal_fallback=True) == []


def test_record_from_row_reads_attack_jsonl_rows():
    row = {
        "id": "r1-seed-001-p0", "seed_id": "seed-001", "instruction": "inst", "prompt": "p", "category": "fraud",
        "responses": [{"text": UNSAFE, "verdict": "unsafe", "categories": [], "reason": ""}, {"text": SAFE, "verdict": "safe"}],
    }
    record = record_from_row(row)
    assert record.tally("unsafe") == 1 and record.tally("safe") == 1 and record.tally("error") == 0
    assert record.responses[0] == Response(UNSAFE, "unsafe")


# --- select_pairs: cleaning, caps, helpful mix-in, determinism ---------------------


def test_duplicates_are_removed_and_counted():
    records = [
        rec("r1", "s1", "Same prompt", "unsafe", "safe", texts=[UNSAFE, SAFE]),
        rec("r2", "s2", "same prompt ", "unsafe", "safe", texts=[UNSAFE.upper(), SAFE]),
        rec("r3", "s3", "Other prompt", "unsafe", "safe", texts=[UNSAFE, SAFE]),
    ]
    result = select(records)
    assert [p.prompt for p in result.target] == ["Same prompt", "Other prompt"]
    assert result.dropped["duplicate"] == 1


def test_overlong_prompts_are_dropped_and_counted():
    records = [
        rec("r1", "s1", "x" * 101, "unsafe", "safe", texts=[UNSAFE, SAFE]),
        rec("r2", "s2", "y" * 100, "unsafe", "safe", texts=[UNSAFE, SAFE]),
    ]
    result = select(records, max_prompt_chars=100)
    assert [p.prompt for p in result.target] == ["y" * 100]
    assert result.dropped["promptTooLong"] == 1


def test_long_answers_are_truncated_not_dropped():
    records = [rec("r1", "s1", "P", "unsafe", "safe", texts=["U" * 500, "S" * 300])]
    (pair,) = select(records, max_response_chars=64).target
    assert pair.chosen == "S" * 64
    assert pair.rejected == "U" * 64


def test_answers_identical_after_truncation_are_dropped_as_degenerate():
    common = "A" * 100
    records = [rec("r1", "s1", "P", "unsafe", "safe", texts=[common + " and then harm", common + " but I cannot"])]
    result = select(records, max_response_chars=64)
    assert result.target == []
    assert result.dropped["degenerate"] == 1


def test_max_pairs_caps_each_model_and_counts_the_rest():
    records = [rec(f"r{i}", f"s{i}", f"P{i}", "unsafe", "safe", texts=[UNSAFE + str(i), SAFE]) for i in range(10)]
    records += [rec(f"q{i}", f"s{i}", f"Q{i}", "safe", "safe") for i in range(10)]
    result = select(records, max_pairs=4)
    assert len(result.target) == 4
    assert len(result.redteam) == 4
    assert result.dropped["targetOverCap"] == 6
    assert result.dropped["redteamOverCap"] == 6
    assert {p.prompt for p in result.target} <= {f"P{i}" for i in range(10)}


def test_helpful_pairs_are_added_only_when_target_pairs_exist():
    no_unsafe = [rec("r1", "s1", "P1", "safe", "safe")]
    result = select(no_unsafe, HELPFUL, helpful_count=3)
    assert result.target == [] and result.helpful == 0

    with_unsafe = safety_records(3)
    result = select(with_unsafe, HELPFUL, helpful_count=3)
    assert result.helpful == 3
    assert len(result.target) == 6
    helpful = [p for p in result.target if p.source.startswith("helpful:")]
    assert len(helpful) == 3
    by_id = {item.id: item for item in HELPFUL}
    for pair in helpful:
        item = by_id[pair.source.split(":", 1)[1]]
        assert pair.prompt == item.prompt
        assert pair.chosen == item.answer  # the real answer is preferred ...
        assert pair.rejected in REFUSALS  # ... over a refusal


@pytest.mark.parametrize("safety_pairs, asked_for, helpful", [(1, 12, 1), (5, 12, 5), (20, 12, 12), (3, 0, 0)])
def test_helpful_pairs_never_outnumber_the_safety_pairs(safety_pairs, asked_for, helpful):
    # More answer-over-refusal pairs than refusal-over-answer ones taught the target to refuse less (its ASR rose).
    records = safety_records(safety_pairs)
    many = [HelpfulItem(f"helpful-{i:03d}", f"How do I do harmless thing {i}?", f"Do it like this ({i}).") for i in range(30)]
    result = select(records, many, helpful_count=asked_for)
    assert result.helpful == helpful
    assert len(result.target) == safety_pairs + helpful


def test_helpful_count_larger_than_the_set_uses_the_whole_set():
    records = safety_records(20)
    result = select(records, HELPFUL, helpful_count=100)
    assert result.helpful == len(HELPFUL)


def test_selection_is_deterministic_for_a_seed():
    records = [rec(f"r{i}", f"s{i % 5}", f"P{i}", "unsafe", "safe" if i % 2 else "unsafe", texts=[UNSAFE + str(i), SAFE + str(i)]) for i in range(30)]
    first = select(records, HELPFUL, helpful_count=5, max_pairs=7, seed=42)
    second = select(records, HELPFUL, helpful_count=5, max_pairs=7, seed=42)
    assert first.target == second.target
    assert first.redteam == second.redteam
    assert first.dropped == second.dropped
    other = select(records, HELPFUL, helpful_count=5, max_pairs=7, seed=43)
    assert [p.source for p in other.target] != [p.source for p in first.target]


def test_pairs_rows_have_dpo_fields():
    pair = Pair("p", "c", "r", "target:x")
    assert pair.as_row() == {"prompt": "p", "chosen": "c", "rejected": "r", "source": "target:x"}


# --- on-goal attacks and own answers (issue 10) --------------------------------------


@pytest.mark.parametrize("reason", ["offGoal", "gibberish", "copy"])
def test_an_off_goal_prompt_is_never_chosen_but_can_be_rejected(reason):
    dropped = Counter()
    records = [rec("a", "s1", "A story about dragons", "unsafe", "unsafe", off_goal=reason), rec("b", "s1", "How to hurt X", "unsafe", "safe")]
    (pair,) = redteam_pairs(records, dropped)
    assert (pair.chosen, pair.rejected) == ("How to hurt X", "A story about dragons")  # the on-goal success beats the off-goal "success"
    assert dropped == {f"redteam{reason[0].upper()}{reason[1:]}": 1}


def test_seed_copies_never_enter_red_team_pairs():
    dropped = Counter()
    records = [rec("a", "s1", "seed text", "unsafe", off_goal="fallback"), rec("b", "s1", "How to hurt X", "safe")]
    assert redteam_pairs(records, dropped) == [] and dropped == {"redteamFallback": 1}


def test_no_red_team_pair_when_only_off_goal_prompts_succeeded():
    records = [rec("a", "s1", "A story", "unsafe", off_goal="offGoal"), rec("b", "s1", "How to hurt X", "safe")]
    assert redteam_pairs(records) == []  # both count as failures: a tie


def test_target_pairs_from_mixed_answers_are_its_own():
    record = rec("a", "s1", "P", "unsafe", "safe", "error", "unsafe", "safe", texts=["bad 1", "good 1", "?", "bad 2", "good 2"])
    (pair,) = target_pairs([record], refusal_fallback=False)
    assert (pair.chosen, pair.rejected, pair.source) == ("good 1", "bad 1", "target:a")


def test_target_pairs_are_on_what_the_target_answered():
    # An off-goal prompt is no attack: the target answered the seed in its place, and its pair is on the seed.
    records = [rec("a", "s1", "A story about dragons", "unsafe", "safe", off_goal="offGoal", asked="How to hurt X"),
               rec("b", "s2", "Tell me how to h4ck Y", "unsafe", "safe")]
    assert [p.prompt for p in target_pairs(records, refusal_fallback=False)] == ["How to hurt X", "Tell me how to h4ck Y"]
    (red,) = redteam_pairs(records + [rec("c", "s1", "How to hurt X now", "unsafe", "unsafe")])
    assert red.rejected == "A story about dragons"  # the red team is still judged on its own prompt


def test_own_answers_are_counted_and_fallbacks_are_marked():
    records = [rec("a", "s1", "P1", "unsafe", "safe"), rec("b", "s1", "P2", "unsafe", "unsafe")]
    selected = select(records, refusal_fallback=True)
    assert [p.source for p in selected.target] == ["target:a", "target-fallback:b"] and selected.target_own == 1
    assert select(records, refusal_fallback=False).target_own == 1 and len(select(records, refusal_fallback=False).target) == 1


def test_record_from_row_reads_the_goal_decision():
    row = {"id": "r1", "seed_id": "s1", "instruction": "i", "prompt": "p", "responses": [], "offGoal": "gibberish", "fallback": False}
    assert record_from_row(row).off_goal == "gibberish"
    assert record_from_row({**row, "offGoal": None, "fallback": True}).off_goal == "fallback"  # older records: the flag alone
    assert record_from_row(row).asked is None and record_from_row({**row, "asked": "seed"}).asked == "seed"
