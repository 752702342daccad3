"""``seas compare``'s pure part: the unpaired difference interval, the marks, and the comparison of two reports (well under a second)."""

from __future__ import annotations

import pytest

from seas_operator.compare import Better, Verdict, compare_reports, difference_interval, mark, rate_delta, render_comparison
from seas_operator.report import Report
from seas_operator.status import GateResult, RoundStatus
from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import Rate


# Newcombe (1998), Stat Med 17:873-890, Table II, method 10, for the difference first minus second.
@pytest.mark.parametrize("first, second, low, high", [
    ((56, 70), (48, 80), 0.0524, 0.3339),
    ((9, 10), (3, 10), 0.1705, 0.8090),
    ((6, 7), (2, 7), 0.0582, 0.8062),
    ((5, 56), (0, 29), -0.0381, 0.1926),
    ((0, 10), (0, 20), -0.1611, 0.2775),
    ((0, 10), (0, 10), -0.2775, 0.2775),
    ((10, 10), (0, 20), 0.6791, 1.0),
    ((10, 10), (0, 10), 0.6075, 1.0),
])
def test_difference_interval_matches_newcombes_table(first, second, low, high):
    got = difference_interval(Rate.of(*second), Rate.of(*first))  # B - A: B is the first proportion
    assert got == pytest.approx((low, high), abs=1e-4)


def test_difference_interval_needs_items_on_both_sides():
    with pytest.raises(ValueError):
        difference_interval(Rate.of(0, 0), Rate.of(3, 10))


@pytest.mark.parametrize("a, b, better, verdict, shown", [
    (Rate.of(30, 48), Rate.of(6, 48), Better.LOWER, Verdict.BETTER, "* better"),  # ASR fell a lot
    (Rate.of(6, 48), Rate.of(30, 48), Better.LOWER, Verdict.WORSE, "* worse"),
    (Rate.of(60, 120), Rate.of(90, 120), Better.HIGHER, Verdict.BETTER, "* better"),  # accuracy rose
    (Rate.of(90, 120), Rate.of(60, 120), Better.HIGHER, Verdict.WORSE, "* worse"),
    (Rate.of(10, 48), Rate.of(12, 48), Better.LOWER, Verdict.NOT_SIGNIFICANT, "ns"),  # noise at n = 48
    (None, Rate.of(12, 48), Better.LOWER, Verdict.NOT_MEASURED, ""),
    (Rate.of(0, 0), Rate.of(12, 48), Better.LOWER, Verdict.NOT_MEASURED, ""),
])
def test_a_change_is_marked_only_when_its_interval_excludes_zero(a, b, better, verdict, shown):
    delta = rate_delta("x", a, b, better)
    assert delta.verdict == verdict and mark(delta) == shown
    assert delta.significant == (verdict in (Verdict.BETTER, Verdict.WORSE))
    if a and a.n and b.n:
        assert delta.low <= delta.difference <= delta.high


def round_(r: int, unsafe: int, correct: int = 80, judge: str = "refusal-match", passed=None, **extra) -> RoundStatus:
    return RoundStatus(round=r, directASR=Rate.of(unsafe, 64), adversarialASR=Rate.of(unsafe, 64), qaAccuracy=Rate.of(correct, 120),
                       qaPerplexity=4.0 + r, judge=JudgeInfo(type=judge), gate=None if passed is None else GateResult(passed=passed), **extra)


def report(*rounds: RoundStatus, name: str = "run") -> Report:
    return Report(evolution=name, complete=True, promotedModel="m", rounds=list(rounds))


def test_the_last_rounds_are_compared_figure_by_figure_with_categories_and_plain_numbers():
    a = report(round_(0, 40), round_(1, 30, passed=False, byCategory={"fraud": Rate.of(6, 8), "hate": Rate.of(2, 8)}))
    b = report(round_(0, 40), round_(1, 20), round_(2, 8, correct=78, passed=True, byCategory={"fraud": Rate.of(1, 8)}))
    c = compare_reports(a, b, "runs/a", "runs/b")
    assert (c.roundA, c.roundB, c.gateA, c.gateB, c.sameJudge) == (1, 2, False, True, True)
    by_name = {d.figure: d for d in c.rates}
    assert by_name["direct ASR"].verdict == Verdict.BETTER and by_name["direct ASR"].difference == pytest.approx(8 / 64 - 30 / 64, abs=1e-4)
    assert by_name["QA accuracy (cloze)"].verdict == Verdict.NOT_SIGNIFICANT
    assert by_name["adversarial ASR, category fraud"].verdict == Verdict.BETTER  # 6/8 -> 1/8
    assert by_name["adversarial ASR, category hate"].verdict == Verdict.NOT_MEASURED and by_name["adversarial ASR, category hate"].b is None
    assert next(n for n in c.numbers if n.figure == "QA perplexity").difference == 1.0


def test_a_round_can_be_chosen_and_a_missing_one_is_named():
    a, b = report(round_(0, 40), round_(1, 30)), report(round_(0, 20), round_(1, 10), name="other")
    assert compare_reports(a, b, round_a=0, round_b=0).rates[0].difference == pytest.approx(-20 / 64, abs=1e-4)
    with pytest.raises(ValueError, match="other has no round 5 \\(it has 0, 1\\)"):
        compare_reports(a, b, round_b=5)
    with pytest.raises(ValueError, match="has no evaluated round"):
        compare_reports(report(), b)


def test_the_text_table_shows_both_rates_the_change_and_the_mark_and_warns_about_different_judges():
    a = report(round_(1, 30, passed=False))
    b = report(round_(1, 8, passed=True, judge="llama-guard"))
    text = render_comparison(compare_reports(a, b, "runs/a", "runs/b"))
    assert "A: runs/a (round 1, gate FAIL, judge refusal-match)" in text and "B: runs/b (round 1, gate pass, judge llama-guard)" in text
    assert "warning: the runs were judged differently" in text
    line = next(line for line in text.splitlines() if line.startswith("direct ASR"))
    assert "30/64 46.9% [35.2, 58.9]" in line and "8/64 12.5%" in line and line.endswith("* better")
    assert "-34.4 pts [" in line
    assert not any(line.startswith("sampled ASR") for line in text.splitlines())  # measured by neither run: no row
    assert "warning" not in render_comparison(compare_reports(a, a))
