"""Rates with confidence intervals, paired tests and judge agreement: the statistics behind every number SEAS shows.

A rate is always reported as ``k/n`` with a 95% confidence interval (:class:`Rate`),
because the prompt sets are small (tens to a few hundred items) and a bare
percentage hides how little it says. Gates decide on the interval, and a change
between two rounds counts as a regression only when a paired test on the
per-prompt verdicts says so (:func:`paired_change`): the same prompts are
answered in both rounds, so an unpaired comparison of two rates would waste
most of the information and mislabel noise as change.

Methods, one per function:

* single proportion: Wilson score interval (Wilson 1927, JASA 22:209-212),
  recommended over the Wald interval by Newcombe (1998, Stat Med 17:857-872)
  and Brown, Cai & DasGupta (2001, Stat Sci 16:101-133);
* exact binomial test: two-sided p-value summing the outcomes no more likely
  than the observed one (the convention of R's ``binom.test``);
* paired change: exact McNemar test, i.e. the exact binomial test on the
  discordant pairs (McNemar 1947, Psychometrika 12:153-157);
* paired difference of proportions: Newcombe's hybrid score interval, method 10
  of Newcombe (1998, Stat Med 17:2635-2650);
* judge agreement: Cohen's kappa (Cohen 1960, Educ Psychol Meas 20:37-46) with
  the large-sample standard error of Fleiss, Cohen & Everitt (1969, Psychol
  Bull 72:323-327).

Pure Python (``math``, ``statistics``) plus pydantic: the control plane imports
it, so it must load fast and never pull in numpy, scipy or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Agreement",
    "PairedChange",
    "Rate",
    "agreement",
    "cohen_kappa",
    "exact_binomial_two_sided",
    "mcnemar_exact",
    "paired_change",
    "paired_change_by_id",
    "paired_difference_interval",
    "wilson_interval",
    "z_value",
]

# Digits kept in the rates and bounds stored in status and results: 4 digits
# is 0.01 percentage points, far below any interval width n can support.
DIGITS = 4

# Relative tolerance when deciding that an outcome is "no more likely" than the
# observed one: floating-point probabilities of tied outcomes (e.g. k and n-k at
# p = 0.5 computed through logarithms) differ in the last bits. R's binom.test
# uses the same 1 + 1e-7.
_TIE_TOLERANCE = 1 + 1e-7


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _check_count(name: str, value: int) -> None:
    # bool is an int subclass; a True count is almost certainly a caller bug.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence``: 0.95 -> 1.959964.

    That is ``Phi^-1((1 + confidence) / 2)``, from :class:`statistics.NormalDist`.
    Raises ValueError unless ``0 < confidence < 1``.
    """
    _check_confidence(confidence)
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n`` (Wilson 1927, JASA 22:209-212).

    The interval is the set of ``p`` whose score test ``|k/n - p| <= z sqrt(p(1-p)/n)``
    does not reject; unlike the Wald interval it never collapses to a point at
    ``k = 0`` or ``k = n`` and keeps close to nominal coverage for small ``n``
    (Newcombe 1998, Stat Med 17:857-872, method 3). ``n == 0`` carries no
    information and gives ``(0.0, 1.0)``. Raises ValueError unless ``0 <= k <= n``.
    """
    _check_count("k", k)
    _check_count("n", n)
    if k > n:
        raise ValueError(f"k must not exceed n, got k={k}, n={n}")
    z = z_value(confidence)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At k = 0 and k = n the bound is exactly 0 (or 1) in exact arithmetic; pin it
    # so rounding noise cannot put it a hair outside [0, 1] or away from the estimate.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


class Rate(BaseModel):
    """A proportion ``k/n`` with its Wilson score interval, as stored in status and results.

    Build it with :meth:`Rate.of`; the rate and bounds are rounded to 4 digits.
    An empty denominator (``n == 0``) has no rate and no interval.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    k: int = Field(ge=0, description="Numerator: items counted (e.g. attacks that got an unsafe answer).")
    n: int = Field(ge=0, description="Denominator: items judged.")
    rate: Optional[float] = Field(None, ge=0, le=1, description="k/n rounded to 4 digits; unset when n is 0.")
    low: Optional[float] = Field(
        None, ge=0, le=1, description="Lower bound of the Wilson score interval, rounded to 4 digits; unset when n is 0."
    )
    high: Optional[float] = Field(
        None, ge=0, le=1, description="Upper bound of the Wilson score interval, rounded to 4 digits; unset when n is 0."
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the interval (0.95 for a 95% interval).")

    @model_validator(mode="after")
    def _consistent(self) -> Rate:
        if self.k > self.n:
            raise ValueError(f"k must not exceed n, got k={self.k}, n={self.n}")
        values = (self.rate, self.low, self.high)
        if self.n == 0:
            if any(v is not None for v in values):
                raise ValueError("rate, low and high must be unset when n is 0")
            return self
        if any(v is None for v in values):
            raise ValueError("rate, low and high must be set when n is positive")
        assert self.rate is not None and self.low is not None and self.high is not None  # for the type checker
        if not self.low <= self.rate <= self.high:
            raise ValueError(f"need low <= rate <= high, got {self.low} <= {self.rate} <= {self.high}")
        # A stored rate that disagrees with its own counts is corrupt data; allow the rounding only.
        if abs(self.rate - self.k / self.n) > 0.5 * 10**-DIGITS + 1e-12:
            raise ValueError(f"rate {self.rate} does not match k/n = {self.k}/{self.n}")
        return self

    @classmethod
    def of(cls, k: int, n: int, confidence: float = 0.95) -> Rate:
        """``k/n`` with its Wilson interval (:func:`wilson_interval`), rounded to 4 digits."""
        low, high = wilson_interval(k, n, confidence)
        if n == 0:
            return cls(k=k, n=n, confidence=confidence)
        return cls(k=k, n=n, rate=round(k / n, DIGITS), low=round(low, DIGITS), high=round(high, DIGITS), confidence=confidence)

    def text(self) -> str:
        """``6/48 = 12.5% [5.9%, 24.7%]`` (``0/0 = n/a``); a level other than 95% is named after the interval."""
        if self.rate is None or self.low is None or self.high is None:
            return f"{self.k}/{self.n} = n/a"
        text = f"{self.k}/{self.n} = {_percent(self.rate)} [{_percent(self.low)}, {_percent(self.high)}]"
        if abs(self.confidence - 0.95) > 1e-12:
            text += f" ({100 * self.confidence:g}% CI)"
        return text

    def __str__(self) -> str:
        return self.text()


def exact_binomial_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test of ``k`` successes in ``n`` trials against success probability ``p``.

    The p-value is the total probability of the outcomes no more likely than the
    observed one (the "minimum likelihood" method; Hollander & Wolfe, Nonparametric
    Statistical Methods; R's ``binom.test``). For ``p = 0.5`` the distribution is
    symmetric and this equals ``min(1, 2 * P(X <= min(k, n - k)))``; that case is
    computed with exact integers (``math.comb``), other ``p`` through ``math.lgamma``
    so that large ``n`` cannot overflow. Raises ValueError unless ``0 <= k <= n``
    and ``0 <= p <= 1``.
    """
    _check_count("k", k)
    _check_count("n", n)
    if k > n:
        raise ValueError(f"k must not exceed n, got k={k}, n={n}")
    if not (isinstance(p, (int, float)) and 0 <= p <= 1):
        raise ValueError(f"p must be within [0, 1], got {p!r}")
    if n == 0:
        return 1.0
    if p == 0 or p == 1:
        # Degenerate null: only one outcome is possible; anything else has probability 0.
        certain = 0 if p == 0 else n
        return 1.0 if k == certain else 0.0
    if p == 0.5:
        # Exact: the probabilities are comb(n, i) / 2^n, so compare and sum integers.
        observed = math.comb(n, k)
        total = 0
        coefficient = 1  # comb(n, i), updated incrementally: O(n) big-int steps, not O(n^2)
        for i in range(n + 1):
            if coefficient <= observed:
                total += coefficient
            coefficient = coefficient * (n - i) // (i + 1)
        return min(1.0, total / 2**n)  # int / int is correctly rounded even for huge ints

    log_p, log_q = math.log(p), math.log1p(-p)

    def log_pmf(i: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q

    logs = [log_pmf(i) for i in range(n + 1)]
    threshold = logs[k] + math.log(_TIE_TOLERANCE)
    # Terms relative to the most likely outcome cannot underflow all at once, and
    # dividing by their own total cancels the rounding of lgamma: when every
    # outcome counts the p-value is exactly 1.
    top = max(logs)
    terms = [math.exp(lp - top) for lp in logs]
    tail = math.fsum(t for t, lp in zip(terms, logs) if lp <= threshold)
    return min(1.0, tail / math.fsum(terms))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test p-value on the discordant counts ``b`` and ``c`` (McNemar 1947, Psychometrika 12:153-157).

    Under the null of no change, each of the ``b + c`` discordant pairs is equally
    likely to go either way, so ``b ~ Binomial(b + c, 1/2)`` and the p-value is the
    two-sided exact binomial test (:func:`exact_binomial_two_sided`); the exact form
    is used because SEAS compares tens of prompts, where the chi-square version is
    unreliable. No discordant pairs (``b + c == 0``) gives 1.0.
    """
    _check_count("b", b)
    _check_count("c", c)
    if b + c == 0:
        return 1.0
    return exact_binomial_two_sided(b, b + c, 0.5)


class PairedChange(BaseModel):
    """The change between two rounds on the same items, by the exact McNemar test (:func:`paired_change`).

    "Bad" means unsafe (or a wrong answer): ``b`` counts items that got worse, ``c``
    those that got better, and only these discordant items carry information.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    n: int = Field(ge=0, description="Items paired: judged in both rounds.")
    b: int = Field(ge=0, description="Items that went from ok to bad (e.g. safe to unsafe).")
    c: int = Field(ge=0, description="Items that went from bad to ok (e.g. unsafe to safe).")
    pValue: float = Field(ge=0, le=1, description="Two-sided exact McNemar p-value on b and c.")
    level: float = Field(gt=0, lt=1, description="Significance level the p-value is compared with.")
    significant: bool = Field(description="True when pValue < level.")
    direction: Literal["worse", "better", "same"] = Field(description="worse when b > c, better when c > b, same otherwise.")
    difference: Optional[float] = Field(None, ge=-1, le=1, description="Change of the bad rate, after minus before: (b - c) / n.")
    low: Optional[float] = Field(None, ge=-1, le=1, description="Lower bound of the difference's interval (Newcombe's method 10), at 1 - level.")
    high: Optional[float] = Field(None, ge=-1, le=1, description="Upper bound of the difference's interval (Newcombe's method 10), at 1 - level.")

    @model_validator(mode="after")
    def _consistent(self) -> PairedChange:
        if self.b + self.c > self.n:
            raise ValueError(f"b + c must not exceed n, got b={self.b}, c={self.c}, n={self.n}")
        return self

    def text(self) -> str:
        """``+3.1 points [-1.2, +7.4], 5 worse / 1 better of 96, p = 0.22``."""
        if self.difference is None:
            return "no items paired"
        return (f"{self.difference * 100:+.1f} points [{(self.low or 0) * 100:+.1f}, {(self.high or 0) * 100:+.1f}], "
                f"{self.b} worse / {self.c} better of {self.n}, p = {self.pValue:.3g}")


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")


def paired_change(before: Sequence[bool], after: Sequence[bool], level: float = 0.05) -> PairedChange:
    """Did the items get worse or better between two rounds? Exact McNemar test on per-item verdicts.

    ``before[i]`` and ``after[i]`` are the verdicts on the same item (True = bad:
    unsafe, or a wrong answer). ``b`` counts False -> True (got worse), ``c`` counts
    True -> False (got better); the p-value is :func:`mcnemar_exact` on them and the
    change is significant when ``p < level``. The direction is reported whether or
    not the change is significant; a gate should require both. Raises ValueError
    when the sequences differ in length or hold anything but booleans (an item
    without a verdict must be left out, not counted as safe).
    """
    _check_level(level)
    if len(before) != len(after):
        raise ValueError(f"before and after must pair up item by item, got lengths {len(before)} and {len(after)}")
    b = c = both_bad = 0
    for i, (was, now) in enumerate(zip(before, after)):
        if not isinstance(was, bool) or not isinstance(now, bool):
            raise ValueError(f"item {i}: verdicts must be booleans, got {was!r} and {now!r}")
        b += (not was) and now
        c += was and not now
        both_bad += was and now
    p_value = mcnemar_exact(b, c)
    direction: Literal["worse", "better", "same"] = "worse" if b > c else "better" if c > b else "same"
    n = len(before)
    interval: dict[str, Optional[float]] = {}
    if n:
        low, high = paired_difference_interval(both_bad, b, c, n - both_bad - b - c, 1 - level)
        interval = {"difference": round((b - c) / n, DIGITS), "low": round(low, DIGITS), "high": round(high, DIGITS)}
    return PairedChange(n=n, b=b, c=c, pValue=p_value, level=level, significant=p_value < level, direction=direction, **interval)


def paired_change_by_id(before: Mapping[str, bool], after: Mapping[str, bool], level: float = 0.05) -> PairedChange:
    """:func:`paired_change` on items paired by id: only ids present in both rounds count.

    Items judged in one round only (a prompt added, dropped, or whose judge failed)
    have no partner and carry no paired information, so they are left out.
    """
    common = sorted(before.keys() & after.keys())  # sorted: the same input always pairs the same way
    return paired_change([before[i] for i in common], [after[i] for i in common], level)


def paired_difference_interval(both_bad: int, b: int, c: int, both_ok: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval for the change in a paired proportion, ``p_after_bad - p_before_bad = (b - c) / n``.

    Newcombe's hybrid score interval, method 10 of Newcombe (1998), "Improved
    confidence intervals for the difference between binomial proportions based on
    paired data", Stat Med 17:2635-2650. The four cells are the paired 2x2 table:
    ``both_bad`` (bad in both rounds), ``b`` (ok before, bad after), ``c`` (bad
    before, ok after) and ``both_ok``; ``n`` is their sum.

    Sign convention: the difference is the *after* rate minus the *before* rate, so
    a positive interval means the later round is worse (more unsafe answers) and a
    negative one that it is better; it is :func:`paired_change`'s ``(b - c) / n``.

    With ``p1 = (both_bad + b) / n`` (after) and ``p2 = (both_bad + c) / n`` (before),
    Wilson intervals ``(l1, u1)`` and ``(l2, u2)`` for each, and their correlation
    ``phi``::

        L = D - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        U = D + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    ``phi`` is Newcombe's estimate ``C / sqrt(A)`` with ``A`` the product of the four
    margins and ``C = ad - bc - n/2`` when ``ad - bc > n/2``, ``0`` when
    ``0 <= ad - bc <= n/2`` and ``ad - bc`` when negative (0 when a margin is empty),
    as in Newcombe & Altman's worked example (Altman et al. 2000, Statistics with
    Confidence, ch. 6) and Fagerland, Lydersen & Laake (2017), Statistical Analysis
    of Contingency Tables, ch. 8. An empty table (``n == 0``) gives ``(-1.0, 1.0)``.
    """
    for name, value in (("both_bad", both_bad), ("b", b), ("c", c), ("both_ok", both_ok)):
        _check_count(name, value)
    _check_confidence(confidence)
    n = both_bad + b + c + both_ok
    if n == 0:
        return -1.0, 1.0
    a, d = both_bad, both_ok
    p1, p2 = (a + b) / n, (a + c) / n
    difference = p1 - p2
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(margins)
    else:
        phi = cross / math.sqrt(margins)
    # max(0, .): with |phi| <= 1 the radicands are >= 0 in exact arithmetic; guard the last bits.
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    # With |phi| <= 1, L >= l1 - u2 >= -1 and U <= u1 - l2 <= 1; the clamp only guards rounding.
    return max(-1.0, difference - delta), min(1.0, difference + epsilon)


def cohen_kappa(tp: int, fp: int, fn: int, tn: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Cohen's kappa for two raters on a binary label, with a large-sample confidence interval: ``(kappa, low, high)``.

    The 2x2 table is the judge against the reference labels: ``tp`` both unsafe,
    ``fp`` judge unsafe / label safe, ``fn`` judge safe / label unsafe, ``tn`` both
    safe. ``kappa = (p_o - p_e) / (1 - p_e)`` (Cohen 1960, Educ Psychol Meas
    20:37-46). The interval is ``kappa +- z * SE`` with the large-sample variance of
    Fleiss, Cohen & Everitt (1969), "Large sample standard errors of kappa and
    weighted kappa", Psychol Bull 72:323-327 (the non-null variance, the one
    statsmodels, SAS and Stata report as the asymptotic SE)::

        var = [sum_i p_ii (1 - (p_i. + p_.i)(1 - kappa))^2
               + (1 - kappa)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
               - (kappa - p_e (1 - kappa))^2] / (n (1 - p_e)^2)

    The interval is clamped to ``[-1, 1]``. When both raters put every item in the
    same single class, ``p_e = 1`` and kappa is 0/0; it is defined as 1 with the
    degenerate interval ``(1, 1)``, since the raters agree on every item. Raises
    ValueError on an empty table.
    """
    for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn)):
        _check_count(name, value)
    z = z_value(confidence)
    n = tp + fp + fn + tn
    if n == 0:
        raise ValueError("kappa is undefined on an empty table")
    # cells[i][j]: label class i, judge class j (0 = unsafe, 1 = safe), as proportions.
    cells = ((tp / n, fn / n), (fp / n, tn / n))
    label = (cells[0][0] + cells[0][1], cells[1][0] + cells[1][1])  # row margins p_i.
    judge = (cells[0][0] + cells[1][0], cells[0][1] + cells[1][1])  # column margins p_.j
    observed = cells[0][0] + cells[1][1]
    expected = label[0] * judge[0] + label[1] * judge[1]
    if tp + tn == n and (tp == n or tn == n):
        return 1.0, 1.0, 1.0
    kappa = (observed - expected) / (1 - expected)
    rest = 1 - kappa
    term_a = sum(cells[i][i] * (1 - (label[i] + judge[i]) * rest) ** 2 for i in (0, 1))
    term_b = rest**2 * sum(cells[i][j] * (judge[i] + label[j]) ** 2 for i in (0, 1) for j in (0, 1) if i != j)
    term_c = (kappa - expected * rest) ** 2
    # max(0, .): the variance is >= 0 in exact arithmetic (0 under perfect agreement); guard the last bits.
    se = math.sqrt(max(0.0, term_a + term_b - term_c) / (n * (1 - expected) ** 2))
    return kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se)


class Agreement(BaseModel):
    """How well a safety judge agrees with reference labels (:func:`agreement`); "positive" means unsafe."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    n: int = Field(ge=0, description="Labelled items.")
    accuracy: Rate = Field(description="Items where the judge's verdict matches the label; a missing verdict counts as a miss.")
    precision: Rate = Field(description="Of the items the judge called unsafe, those labelled unsafe.")
    recall: Rate = Field(description="Of the items labelled unsafe, those the judge called unsafe.")
    kappa: float = Field(ge=-1, le=1, description="Cohen's kappa between judge and labels (missing verdicts count as safe).")
    kappaLow: float = Field(ge=-1, le=1, description="Lower bound of kappa's confidence interval (Fleiss-Cohen-Everitt standard error).")
    kappaHigh: float = Field(ge=-1, le=1, description="Upper bound of kappa's confidence interval (Fleiss-Cohen-Everitt standard error).")


def agreement(labels: Sequence[bool], predictions: Sequence[Optional[bool]], confidence: float = 0.95) -> Agreement:
    """Agreement of a judge's verdicts with reference labels: accuracy, precision, recall (Wilson intervals) and Cohen's kappa.

    True means unsafe, in both sequences. A prediction may be None where the judge
    gave no verdict (an error, an unparsable answer). Such an item is a
    disagreement for accuracy, so a judge cannot look better by failing, and a
    "not unsafe" prediction for precision, recall and kappa, which need a 2x2
    table: it is never a true positive, so a judge that fails on unsafe items
    loses recall. Rates use :meth:`Rate.of`; kappa uses :func:`cohen_kappa`, rounded
    to 4 digits like the rates. Raises ValueError when the lengths differ, when a
    label is not a boolean, or when there are no items.
    """
    if len(labels) != len(predictions):
        raise ValueError(f"labels and predictions must pair up item by item, got lengths {len(labels)} and {len(predictions)}")
    tp = fp = fn = tn = correct = 0
    for i, (label, predicted) in enumerate(zip(labels, predictions)):
        if not isinstance(label, bool):
            raise ValueError(f"item {i}: labels must be booleans, got {label!r}")
        if predicted is not None and not isinstance(predicted, bool):
            raise ValueError(f"item {i}: predictions must be booleans or None, got {predicted!r}")
        correct += predicted is label
        unsafe = predicted is True
        tp += label and unsafe
        fp += (not label) and unsafe
        fn += label and not unsafe
        tn += (not label) and not unsafe
    kappa, low, high = cohen_kappa(tp, fp, fn, tn, confidence)
    return Agreement(
        n=len(labels),
        accuracy=Rate.of(correct, len(labels), confidence),
        precision=Rate.of(tp, tp + fp, confidence),
        recall=Rate.of(tp, tp + fn, confidence),
        kappa=round(kappa, DIGITS),
        kappaLow=round(low, DIGITS),
        kappaHigh=round(high, DIGITS),
    )
