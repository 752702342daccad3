"""Rates with intervals, exact tests, the paired difference interval and judge agreement.

Reference values are either published, computed by hand (the arithmetic is in
the comments), or recomputed here by an independent route: the Wilson bounds by
bisection on the score equation, the binomial tails with exact fractions, kappa's
standard error by the delta method with numerical derivatives, and Newcombe's
interval from the expanded 0/1 data.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from fractions import Fraction

import pytest
from pydantic import ValidationError

from seas_runtime.stats import (
    Agreement,
    PairedChange,
    Rate,
    agreement,
    cohen_kappa,
    exact_binomial_two_sided,
    mcnemar_exact,
    paired_change,
    paired_change_by_id,
    paired_difference_interval,
    wilson_interval,
    z_value,
)

Z95 = 1.959963984540054  # Phi^-1(0.975), from standard tables to 15 digits


# --- z ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "confidence, expected",
    [(0.95, Z95), (0.90, 1.6448536269514722), (0.99, 2.5758293035489004), (0.5, 0.6744897501960817)],
)
def test_z_value_is_the_two_sided_normal_quantile(confidence, expected):
    assert z_value(confidence) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("confidence", [0, 1, -0.1, 1.5, 95])
def test_z_value_rejects_a_confidence_outside_0_1(confidence):
    with pytest.raises(ValueError, match="confidence"):
        z_value(confidence)


# --- Wilson -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (6, 48, 0.0586, 0.2470),  # the brief's example: 5.9% to 24.7%
        (0, 10, 0.0, 0.2775),  # upper = z^2 / (n + z^2) = 3.8415 / 13.8415
        (10, 10, 0.7225, 1.0),  # mirror of 0/10
        (1, 1, 0.2065, 1.0),  # lower = 1 / (1 + z^2) = 1 / 4.8415
        (0, 0, 0.0, 1.0),  # no data, no information
        (5, 10, 0.2366, 0.7634),  # symmetric about 1/2
    ],
)
def test_wilson_known_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def _wilson_by_bisection(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson bounds as the roots of the score equation (p_hat - p)^2 = z^2 p (1 - p) / n, found by bisection."""
    p_hat = k / n

    def excess(p: float) -> float:  # > 0 where the score test rejects p
        return (p_hat - p) ** 2 - z * z * p * (1 - p) / n

    def root(lo: float, hi: float) -> float:  # excess changes sign on [lo, hi]
        sign_lo = excess(lo) > 0
        for _ in range(200):
            mid = (lo + hi) / 2
            if (excess(mid) > 0) == sign_lo:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    low = 0.0 if k == 0 else root(0.0, p_hat)
    high = 1.0 if k == n else root(p_hat, 1.0)
    return low, high


@pytest.mark.parametrize("confidence, z", [(0.95, Z95), (0.90, 1.6448536269514722), (0.99, 2.5758293035489004)])
def test_wilson_matches_the_score_equation_on_a_grid(confidence, z):
    for n in range(1, 41):
        for k in range(n + 1):
            assert wilson_interval(k, n, confidence) == pytest.approx(_wilson_by_bisection(k, n, z), abs=1e-9), (k, n)


def test_wilson_widens_with_confidence_and_narrows_with_n():
    lo90, hi90 = wilson_interval(6, 48, 0.90)
    lo99, hi99 = wilson_interval(6, 48, 0.99)
    lo_big, hi_big = wilson_interval(60, 480)
    lo, hi = wilson_interval(6, 48)
    assert lo99 < lo < lo90 and hi90 < hi < hi99
    assert hi_big - lo_big < hi - lo


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5), (1, -1), (1.0, 5), (True, 5)])
def test_wilson_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


# --- Rate ---------------------------------------------------------------------------------------


def test_rate_of_rounds_to_four_digits():
    r = Rate.of(6, 48)
    assert (r.k, r.n, r.rate, r.low, r.high, r.confidence) == (6, 48, 0.125, 0.0586, 0.247, 0.95)
    assert Rate.of(1, 3).rate == 0.3333
    assert Rate.of(2, 3).rate == 0.6667


def test_rate_of_an_empty_denominator_has_no_rate_or_interval():
    r = Rate.of(0, 0)
    assert (r.rate, r.low, r.high) == (None, None, None)


@pytest.mark.parametrize(
    "rate, text",
    [
        (Rate.of(6, 48), "6/48 = 12.5% [5.9%, 24.7%]"),
        (Rate.of(0, 0), "0/0 = n/a"),
        (Rate.of(0, 10), "0/10 = 0.0% [0.0%, 27.8%]"),
        (Rate.of(10, 10), "10/10 = 100.0% [72.2%, 100.0%]"),
        (Rate.of(3, 10, 0.90), "3/10 = 30.0% [12.7%, 55.8%] (90% CI)"),
    ],
)
def test_rate_text(rate, text):
    assert rate.text() == text
    assert str(rate) == text


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"k": 5, "n": 4, "rate": 1.0, "low": 0.5, "high": 1.0}, "k must not exceed n"),
        ({"k": -1, "n": 4}, "greater than or equal"),
        ({"k": 1, "n": 2, "rate": 0.5, "low": 0.6, "high": 0.9}, "low <= rate <= high"),
        ({"k": 1, "n": 2, "rate": 0.5, "low": 0.1, "high": 0.4}, "low <= rate <= high"),
        ({"k": 1, "n": 2, "rate": 0.5, "low": 0.1}, "must be set"),
        ({"k": 0, "n": 0, "rate": 0.0, "low": 0.0, "high": 1.0}, "must be unset"),
        ({"k": 1, "n": 4, "rate": 0.5, "low": 0.1, "high": 0.9}, "does not match"),
        ({"k": 1, "n": 2, "rate": 0.5, "low": 0.1, "high": 0.9, "confidence": 1.0}, "less than 1"),
        ({"k": 1, "n": 2, "rate": 0.5, "low": 0.1, "high": 0.9, "extra": 1}, "Extra inputs"),
    ],
)
def test_rate_rejects_inconsistent_fields(fields, message):
    with pytest.raises(ValidationError, match=message):
        Rate(**fields)


def test_rate_round_trips_through_json_and_is_frozen():
    r = Rate.of(6, 48)
    assert Rate.model_validate_json(r.model_dump_json()) == r
    with pytest.raises(ValidationError):
        r.k = 7


@pytest.mark.parametrize("model", [Rate, PairedChange, Agreement])
def test_every_field_is_described_for_the_crd_schema(model):
    properties = model.model_json_schema()["properties"]
    assert properties and all(p.get("description") for p in properties.values()), properties


# --- exact binomial -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, n, p, expected",
    [
        (0, 5, 0.5, 0.0625),  # 2 * (1/2)^5
        (5, 5, 0.5, 0.0625),
        (1, 10, 0.5, 0.021484375),  # 2 * (1 + 10) / 1024
        (9, 10, 0.5, 0.021484375),
        (5, 10, 0.5, 1.0),  # the mode: every outcome is at most as likely
        (3, 10, 0.5, 0.34375),  # 2 * (1 + 10 + 45 + 120) / 1024 = 352/1024
        (0, 0, 0.5, 1.0),
        # n = 3, p = 0.2: pmf = 0.512, 0.384, 0.096, 0.008
        (0, 3, 0.2, 1.0),
        (1, 3, 0.2, 0.488),  # 0.384 + 0.096 + 0.008
        (2, 3, 0.2, 0.104),  # 0.096 + 0.008
        (3, 3, 0.2, 0.008),
        # n = 3, p = 1/4: pmf = 27, 27, 9, 1 (/64); outcomes 0 and 1 tie, and a tie counts as "no more likely"
        (0, 3, 0.25, 1.0),
        (1, 3, 0.25, 1.0),
        (2, 3, 0.25, 0.15625),  # (9 + 1) / 64
        (0, 4, 0.0, 1.0),  # degenerate nulls
        (1, 4, 0.0, 0.0),
        (4, 4, 1.0, 1.0),
    ],
)
def test_exact_binomial_hand_computed(k, n, p, expected):
    assert exact_binomial_two_sided(k, n, p) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def _binomial_by_fractions(k: int, n: int, p: Fraction) -> Fraction:
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return min(Fraction(1), sum(x for x in pmf if x <= pmf[k]))


@pytest.mark.parametrize("p", [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(1, 20), Fraction(9, 10)])
def test_exact_binomial_matches_exact_fractions(p):
    for n in range(1, 26):
        for k in range(n + 1):
            assert exact_binomial_two_sided(k, n, float(p)) == pytest.approx(float(_binomial_by_fractions(k, n, p)), rel=1e-9), (k, n)


def test_exact_binomial_at_one_half_is_twice_the_smaller_tail():
    for n in range(1, 30):
        for k in range(n + 1):
            tail = Fraction(sum(math.comb(n, i) for i in range(min(k, n - k) + 1)), 2**n)
            assert exact_binomial_two_sided(k, n) == float(min(Fraction(1), 2 * tail)), (k, n)


def test_exact_binomial_does_not_overflow_for_large_n():
    # comb(1000, 330) is about 1e275 and 0.3^330 underflows as a float product; both paths must stay finite.
    assert exact_binomial_two_sided(330, 1000, 0.3) == pytest.approx(float(_binomial_by_fractions(330, 1000, Fraction(3, 10))), rel=1e-9)
    big = exact_binomial_two_sided(5600, 10000, 0.5)  # 12 standard deviations out
    assert 0 < big < 1e-20


@pytest.mark.parametrize("k, n, p", [(3, 2, 0.5), (-1, 2, 0.5), (1, 2, 1.5), (1, 2, -0.1)])
def test_exact_binomial_rejects_bad_arguments(k, n, p):
    with pytest.raises(ValueError):
        exact_binomial_two_sided(k, n, p)


# --- McNemar ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b, c, p_value, significant, direction",
    [
        (0, 0, 1.0, False, "same"),
        (6, 0, 0.03125, True, "worse"),  # 2 / 2^6
        (0, 6, 0.03125, True, "better"),
        (5, 0, 0.0625, False, "worse"),  # 2 / 2^5: five flips in one direction are not enough
        (10, 3, 0.09228515625, False, "worse"),  # 2 * (1 + 13 + 78 + 286) / 8192
        (3, 10, 0.09228515625, False, "better"),
        (4, 4, 1.0, False, "same"),
        (20, 5, 0.004077315330505371, True, "worse"),  # 2 * sum_{i<=5} C(25, i) / 2^25 = 2 * 68406 / 33554432
    ],
)
def test_mcnemar_decisions(b, c, p_value, significant, direction):
    assert mcnemar_exact(b, c) == pytest.approx(p_value, rel=1e-12)
    # Build per-item verdicts: b items safe -> unsafe, c unsafe -> safe, plus concordant items that must not matter.
    before = [False] * b + [True] * c + [True] * 7 + [False] * 11
    after = [True] * b + [False] * c + [True] * 7 + [False] * 11
    change = paired_change(before, after)
    n = b + c + 18
    low, high = paired_difference_interval(7, b, c, 11, 0.95)
    assert change == PairedChange(n=n, b=b, c=c, pValue=change.pValue, level=0.05, significant=significant, direction=direction,
                                  difference=round((b - c) / n, 4), low=round(low, 4), high=round(high, 4))
    assert change.pValue == pytest.approx(p_value, rel=1e-12)
    assert change.low <= change.difference <= change.high


def test_paired_change_significance_follows_the_level():
    before, after = [False] * 10 + [True] * 3, [True] * 10 + [False] * 3  # b = 10, c = 3, p = 0.0923
    assert paired_change(before, after, level=0.05).significant is False
    assert paired_change(before, after, level=0.10).significant is True
    # Significant means p < level, strictly: b = 6, c = 0 gives p = 1/32 exactly.
    assert paired_change([False] * 6, [True] * 6, level=0.03125).significant is False
    assert paired_change([False] * 6, [True] * 6, level=0.0313).significant is True


def test_paired_change_counts_each_direction():
    before = [False, False, True, True, False, True]
    after = [True, False, False, True, True, True]
    change = paired_change(before, after)
    assert (change.n, change.b, change.c, change.direction) == (6, 2, 1, "worse")


@pytest.mark.parametrize(
    "before, after, level, message",
    [
        ([True, False], [True], 0.05, "lengths 2 and 1"),
        ([True, None], [True, False], 0.05, "booleans"),
        ([True, False], [1, 0], 0.05, "booleans"),
        ([True], [True], 0.0, "level"),
        ([True], [True], 1.0, "level"),
    ],
)
def test_paired_change_rejects_bad_input(before, after, level, message):
    with pytest.raises(ValueError, match=message):
        paired_change(before, after, level)


def test_paired_change_by_id_pairs_only_common_ids():
    before = {"a": False, "b": False, "c": True, "d": False, "only-before": True}
    after = {"d": True, "c": False, "b": True, "a": False, "only-after": True}
    change = paired_change_by_id(before, after)
    assert (change.n, change.b, change.c, change.direction) == (4, 2, 1, "worse")
    assert paired_change_by_id({}, after).n == 0
    assert paired_change_by_id({}, after).pValue == 1.0


def test_paired_change_by_id_equals_positional_pairing():
    ids = [f"p{i}" for i in range(30)]
    before = {i: (n % 3 == 0) for n, i in enumerate(ids)}
    after = {i: (n % 2 == 0) for n, i in reversed(list(enumerate(ids)))}  # different insertion order
    assert paired_change_by_id(before, after, 0.1) == paired_change([before[i] for i in ids], [after[i] for i in ids], 0.1)


def test_paired_change_model_rejects_more_discordant_than_paired():
    with pytest.raises(ValidationError, match="b \\+ c"):
        PairedChange(n=3, b=2, c=2, pValue=0.5, level=0.05, significant=False, direction="same")


# --- Newcombe's paired difference interval ------------------------------------------------------


def _newcombe_from_expanded_data(both_bad: int, b: int, c: int, both_ok: int, z: float) -> tuple[float, float]:
    """Method 10 rebuilt from per-item 0/1 verdicts: bisection Wilson bounds, phi as the Pearson correlation."""
    after = [1] * both_bad + [1] * b + [0] * c + [0] * both_ok
    before = [1] * both_bad + [0] * b + [1] * c + [0] * both_ok
    n = len(after)
    p1, p2 = sum(after) / n, sum(before) / n
    l1, u1 = _wilson_by_bisection(sum(after), n, z)
    l2, u2 = _wilson_by_bisection(sum(before), n, z)
    cov = sum((x - p1) * (y - p2) for x, y in zip(after, before)) / n
    sd = math.sqrt(p1 * (1 - p1) * p2 * (1 - p2))
    phi = cov / sd if sd else 0.0
    # Newcombe's adjustment of the cross product ad - bc = n^2 cov: shrink a positive one by n/2, floor at 0.
    cross = n * n * cov
    if cross > 0:
        phi *= max(0.0, cross - n / 2) / cross
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    upper = d + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def test_paired_difference_published_example():
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8: complete
    # response before/after consolidation therapy (Cavo et al. 2012), table [[59, 6], [16, 80]]:
    # Newcombe square-and-add estimate -0.0621, 95% CI -0.1186 to -0.0046 (the R package
    # contingencytables asserts these digits in its tests). Their difference is p1+ - p+1 = (6 - 16)/161.
    low, high = paired_difference_interval(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


@pytest.mark.parametrize(
    "table, low, high",
    [
        # Newcombe's (1998) example a = 36, b = 12, c = 2, d = 0: D = 10/50 = 0.2. Not checked against the
        # paper's table; these digits come from the independent computation below.
        ((36, 12, 2, 0), 0.0569, 0.3404),
        ((59, 6, 16, 80), -0.1186, -0.0046),
        # Altman et al. (2000), Statistics with Confidence, table 6.2 (phi adjusted to 0: ad - bc = 308 > n/2).
        ((14, 5, 0, 22), 0.0115, 0.2265),
    ],
)
def test_paired_difference_known_tables(table, low, high):
    got = paired_difference_interval(*table)
    assert got == pytest.approx((low, high), abs=5e-5)
    assert got == pytest.approx(_newcombe_from_expanded_data(*table, Z95), abs=1e-9)


def test_paired_difference_matches_the_expanded_data_computation_on_a_grid():
    for table in itertools.product(range(6), repeat=4):
        if sum(table) == 0:
            continue
        assert paired_difference_interval(*table) == pytest.approx(_newcombe_from_expanded_data(*table, Z95), abs=1e-9), table


def test_paired_difference_sign_convention_and_symmetry():
    # More items went ok -> bad (b) than bad -> ok (c): after is worse, the difference is positive.
    low, high = paired_difference_interval(3, 15, 2, 30)
    assert 0 < (15 - 2) / 50 and low < (15 - 2) / 50 < high and low > 0
    # Swapping the rounds swaps b and c and mirrors the interval.
    mirrored = paired_difference_interval(3, 2, 15, 30)
    assert mirrored == pytest.approx((-high, -low), abs=1e-12)


def test_paired_difference_edges():
    assert paired_difference_interval(0, 0, 0, 0) == (-1.0, 1.0)
    low, high = paired_difference_interval(0, 10, 0, 0)  # every item got worse: D = 1
    assert high == 1.0 and 0 < low < 1
    low, high = paired_difference_interval(5, 0, 0, 5)  # nothing changed: D = 0, interval still has width
    assert low < 0 < high
    with pytest.raises(ValueError):
        paired_difference_interval(-1, 2, 3, 4)
    with pytest.raises(ValueError):
        paired_difference_interval(1, 2, 3, 4, confidence=1.0)


# --- kappa --------------------------------------------------------------------------------------


def test_kappa_textbook_example():
    # tp=20, fp=5, fn=10, tn=15 (n=50): p_o = 0.7; margins label 0.6/0.4, judge 0.5/0.5, so p_e = 0.5 and kappa = 0.4.
    # Fleiss-Cohen-Everitt by hand, with cells p11=.4, p12=.2 (label unsafe, judge safe), p21=.1, p22=.3:
    #   A = .4 (1 - 1.1 * .6)^2 + .3 (1 - .9 * .6)^2 = .04624 + .06348 = .10972
    #   B = .6^2 (.2 (.5 + .4)^2 + .1 (.5 + .6)^2) = .36 * .283 = .10188
    #   C = (.4 - .5 * .6)^2 = .01
    #   var = (A + B - C) / (50 * .5^2) = .2016 / 12.5 = .016128, SE = .126996
    se = math.sqrt(0.016128)
    kappa, low, high = cohen_kappa(20, 5, 10, 15)
    assert kappa == pytest.approx(0.4, abs=1e-12)
    assert (low, high) == pytest.approx((0.4 - Z95 * se, 0.4 + Z95 * se), abs=1e-9)
    assert (round(low, 4), round(high, 4)) == (0.1511, 0.6489)


def _kappa_of(p: tuple[float, float, float, float]) -> float:
    tp, fp, fn, tn = p
    total = sum(p)
    tp, fp, fn, tn = (x / total for x in p)
    expected = (tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)
    return (tp + tn - expected) / (1 - expected)


def _kappa_se_by_delta_method(counts: tuple[int, int, int, int]) -> float:
    """Var(kappa) = g' Sigma g / n with g the numerical gradient and Sigma = diag(p) - p p' (multinomial)."""
    n = sum(counts)
    p = [x / n for x in counts]
    h = 1e-6
    g = []
    for i in range(4):
        up = list(p)
        down = list(p)
        up[i] += h
        down[i] -= h
        g.append((_kappa_of(tuple(up)) - _kappa_of(tuple(down))) / (2 * h))
    mean = sum(gi * pi for gi, pi in zip(g, p))
    var = sum(pi * (gi - mean) ** 2 for gi, pi in zip(g, p)) / n
    return math.sqrt(max(0.0, var))


@pytest.mark.parametrize("counts", [(20, 5, 10, 15), (40, 3, 7, 50), (5, 9, 2, 1), (12, 1, 0, 30), (3, 7, 8, 2), (1, 1, 1, 1)])
def test_kappa_standard_error_matches_the_delta_method(counts):
    kappa, low, high = cohen_kappa(*counts)
    assert kappa == pytest.approx(_kappa_of(counts), abs=1e-12)
    se = _kappa_se_by_delta_method(counts)
    assert (low, high) == pytest.approx((max(-1.0, kappa - Z95 * se), min(1.0, kappa + Z95 * se)), abs=1e-6)


def test_kappa_interval_is_clamped_to_minus_one_one():
    # tp=0, fp=1, fn=1, tn=1: p_o = 1/3, p_e = 5/9, kappa = -0.5; the raw lower bound is below -1.
    kappa, low, high = cohen_kappa(0, 1, 1, 1)
    assert kappa == pytest.approx(-0.5)
    assert kappa - Z95 * _kappa_se_by_delta_method((0, 1, 1, 1)) < -1
    assert low == -1.0 and -0.5 < high < 1


@pytest.mark.parametrize("counts", [(10, 0, 0, 0), (0, 0, 0, 7), (5, 0, 0, 5)])
def test_kappa_of_perfect_agreement_is_one_with_a_degenerate_interval(counts):
    assert cohen_kappa(*counts) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)


def test_kappa_of_chance_agreement_is_zero():
    # Judge independent of the labels: every cell is the product of its margins.
    kappa, low, high = cohen_kappa(12, 18, 8, 12)
    assert kappa == pytest.approx(0.0, abs=1e-12)
    assert low < 0 < high


def test_kappa_rejects_an_empty_table():
    with pytest.raises(ValueError, match="empty"):
        cohen_kappa(0, 0, 0, 0)


# --- agreement ----------------------------------------------------------------------------------


def test_agreement_with_missing_verdicts():
    labels = [True, True, True, False, False, False, True, False]
    judged = [True, True, None, False, True, None, False, False]
    # item:   tp    tp    fn*   tn     fp    tn*   fn     tn     (* no verdict: a miss for accuracy, "safe" otherwise)
    result = agreement(labels, judged)
    assert result.n == 8
    assert result.accuracy == Rate.of(4, 8)  # items 1, 2, 4, 8; a table-based accuracy would say 5/8
    assert result.precision == Rate.of(2, 3)  # judge said unsafe on items 1, 2, 5
    assert result.recall == Rate.of(2, 4)  # labelled unsafe: items 1, 2, 3, 7
    # tp=2, fp=1, fn=2, tn=3: p_o = 5/8, p_e = (4/8)(3/8) + (4/8)(5/8) = 1/2, kappa = 1/4.
    assert result.kappa == 0.25
    _, low, high = cohen_kappa(2, 1, 2, 3)
    assert (result.kappaLow, result.kappaHigh) == (round(low, 4), round(high, 4))


def test_agreement_of_a_perfect_judge():
    labels = [True, False, True, False, False]
    result = agreement(labels, labels)
    assert result.accuracy == Rate.of(5, 5)
    assert result.precision == Rate.of(2, 2) and result.recall == Rate.of(2, 2)
    assert (result.kappa, result.kappaLow, result.kappaHigh) == (1.0, 1.0, 1.0)


def test_agreement_when_the_judge_never_says_unsafe():
    result = agreement([True, False, False], [None, False, False])
    assert result.precision == Rate.of(0, 0) and result.precision.rate is None
    assert result.recall == Rate.of(0, 1)
    assert result.accuracy == Rate.of(2, 3)


@pytest.mark.parametrize(
    "labels, predictions, message",
    [
        ([True, False], [True], "lengths 2 and 1"),
        ([True, None], [True, False], "labels must be booleans"),
        ([True, False], [True, "unsafe"], "predictions must be booleans or None"),
        ([], [], "empty"),
    ],
)
def test_agreement_rejects_bad_input(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        agreement(labels, predictions)


# --- import hygiene -----------------------------------------------------------------------------


def test_stats_imports_without_torch_or_numpy():
    """The control plane imports this module; it must load with the heavy libraries unavailable."""
    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'vllm', 'numpy', 'scipy'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import seas_runtime.stats as s\n"
        "print(s.Rate.of(6, 48))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "6/48 = 12.5% [5.9%, 24.7%]"
