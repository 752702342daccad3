"""``seas compare RUN_A RUN_B``: per-figure changes between two runs' reports, each with its interval and a significance mark (pure).

Two runs are independent samples (other models, other seeds, maybe other
prompts), so a rate is compared unpaired: the difference ``B - A`` of the two
proportions gets Newcombe's hybrid score interval (Newcombe 1998, Stat Med
17:873-890, method 10), built from each rate's Wilson interval
(:func:`seas_runtime.stats.wilson_interval`). A change is significant when that
interval excludes 0. When both runs answered the same prompts the paired test
of the rounds themselves (``regression`` in status) is sharper; this one is
conservative.

Figures are compared only under the same judge: Llama Guard 2 and 3 number
their categories differently, and a heuristic judge measures something else
again, so the comparison says when the judges differ.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Optional

from pydantic import BaseModel, Field

from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import Rate, wilson_interval

from .report import Report, rate_text
from .status import RoundStatus


class Better(StrEnum):
    """Which way a figure improves."""

    LOWER = "lower"
    HIGHER = "higher"


class Verdict(StrEnum):
    """What a change means for the model, once it is significant."""

    WORSE = "worse"
    BETTER = "better"
    NOT_SIGNIFICANT = "not significant"
    NOT_MEASURED = "not measured"


RATE_FIGURES: tuple[tuple[str, str, Better], ...] = (
    ("direct ASR", "directASR", Better.LOWER),
    ("adversarial ASR", "adversarialASR", Better.LOWER),
    ("sampled ASR", "sampledASR", Better.LOWER),
    ("red-team ASR", "redteamASR", Better.LOWER),
    ("attack ASR", "attackASR", Better.LOWER),
    ("contrast refusal", "contrastRefusalRate", Better.LOWER),
    ("benign refusal", "benignRefusalRate", Better.LOWER),
    ("judge errors", "judgeErrorRate", Better.LOWER),
    ("QA accuracy (cloze)", "qaAccuracy", Better.HIGHER),
    ("QA acc_norm", "qaAccuracyNorm", Better.HIGHER),
    ("QA accuracy (chat)", "qaGenerationAccuracy", Better.HIGHER),
)
NUMBER_FIGURES: tuple[tuple[str, str], ...] = (
    ("QA perplexity", "qaPerplexity"),
    ("QA entropy", "qaEntropy"),
    ("QA answer probability", "qaAnswerProbability"),
    ("chat perplexity", "qaGenerationPerplexity"),
    ("chat top-10 entropy", "qaGenerationEntropy"),
    ("chat top-token probability", "qaGenerationTopProbability"),
)


def difference_interval(a: Rate, b: Rate, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``b - a`` of two independent proportions (method 10).

    With Wilson intervals ``(la, ua)`` and ``(lb, ub)``::

        L = d - sqrt((pb - lb)^2 + (ua - pa)^2)
        U = d + sqrt((ub - pb)^2 + (pa - la)^2)

    Raises ValueError when either rate has no items (``n == 0``): nothing to compare.
    """
    if not a.n or not b.n:
        raise ValueError("both rates need items to be compared")
    pa, pb = a.k / a.n, b.k / b.n
    la, ua = wilson_interval(a.k, a.n, confidence)
    lb, ub = wilson_interval(b.k, b.n, confidence)
    d = pb - pa
    return max(-1.0, d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)), min(1.0, d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2))


class RateDelta(BaseModel):
    """One rate in both runs and its change, B - A."""

    figure: str
    a: Optional[Rate] = None
    b: Optional[Rate] = None
    better: Better
    difference: Optional[float] = Field(None, description="B's rate minus A's; unset unless both were measured.")
    low: Optional[float] = Field(None, description="Lower bound of the difference's interval (Newcombe, unpaired).")
    high: Optional[float] = Field(None, description="Upper bound of the difference's interval (Newcombe, unpaired).")
    significant: bool = False
    verdict: Verdict = Verdict.NOT_MEASURED


class NumberDelta(BaseModel):
    """A figure without a k/n (perplexity, entropy): both values and the change; no test."""

    figure: str
    a: Optional[float] = None
    b: Optional[float] = None
    difference: Optional[float] = None


class Comparison(BaseModel):
    """Run B against run A, one round of each (the last, unless asked)."""

    a: str
    b: str
    roundA: int
    roundB: int
    judgeA: Optional[JudgeInfo] = None
    judgeB: Optional[JudgeInfo] = None
    sameJudge: bool
    gateA: Optional[bool] = Field(None, description="Whether run A's round passed its gates (unset for a baseline).")
    gateB: Optional[bool] = Field(None, description="Whether run B's round passed its gates (unset for a baseline).")
    rates: list[RateDelta] = Field(default_factory=list)
    numbers: list[NumberDelta] = Field(default_factory=list)


def rate_delta(figure: str, a: Optional[Rate], b: Optional[Rate], better: Better) -> RateDelta:
    """The change of one rate from ``a`` to ``b``, significant when its interval excludes 0, at the rates' own confidence."""
    if a is None or b is None or not a.n or not b.n:
        return RateDelta(figure=figure, a=a, b=b, better=better)
    confidence = min(a.confidence, b.confidence)
    low, high = difference_interval(a, b, confidence)
    significant = low > 0 or high < 0
    up = high < 0 if better == Better.LOWER else low > 0
    verdict = (Verdict.BETTER if up else Verdict.WORSE) if significant else Verdict.NOT_SIGNIFICANT
    return RateDelta(figure=figure, a=a, b=b, better=better, difference=round(b.k / b.n - a.k / a.n, 4), low=round(low, 4), high=round(high, 4),
                     significant=significant, verdict=verdict)


def pick_round(report: Report, round_: Optional[int]) -> RoundStatus:
    """The report's round ``round_`` (its last when None); raises ValueError naming the rounds it has."""
    if not report.rounds:
        raise ValueError(f"{report.evolution} has no evaluated round")
    if round_ is None:
        return report.rounds[-1]
    found = next((r for r in report.rounds if r.round == round_), None)
    if found is None:
        raise ValueError(f"{report.evolution} has no round {round_} (it has {', '.join(str(r.round) for r in report.rounds)})")
    return found


def compare_reports(a: Report, b: Report, label_a: str = "A", label_b: str = "B",
                    round_a: Optional[int] = None, round_b: Optional[int] = None) -> Comparison:
    """Every figure of B's round against A's: the rates with intervals and marks, then per category and style, then the plain numbers."""
    ra, rb = pick_round(a, round_a), pick_round(b, round_b)
    rates = [rate_delta(name, getattr(ra, field, None), getattr(rb, field, None), better) for name, field, better in RATE_FIGURES]
    for title, field in (("category", "byCategory"), ("style", "byStyle")):
        for key in sorted(set(getattr(ra, field)) | set(getattr(rb, field))):
            rates.append(rate_delta(f"adversarial ASR, {title} {key}", getattr(ra, field).get(key), getattr(rb, field).get(key), Better.LOWER))
    numbers = []
    for name, field in NUMBER_FIGURES:
        va, vb = getattr(ra, field), getattr(rb, field)
        numbers.append(NumberDelta(figure=name, a=va, b=vb, difference=None if va is None or vb is None else round(vb - va, 4)))
    return Comparison(a=label_a, b=label_b, roundA=ra.round, roundB=rb.round, judgeA=ra.judge, judgeB=rb.judge, sameJudge=ra.judge == rb.judge,
                      gateA=ra.gate.passed if ra.gate else None, gateB=rb.gate.passed if rb.gate else None, rates=rates, numbers=numbers)


def mark(delta: RateDelta) -> str:
    """``*`` and the verdict for a significant change; ``ns`` when not significant; empty when not measured in both."""
    if delta.verdict == Verdict.NOT_MEASURED:
        return ""
    return f"* {delta.verdict.value}" if delta.significant else "ns"


def _judge(judge: Optional[JudgeInfo]) -> str:
    return "none" if judge is None else judge.type + (f" ({judge.model})" if judge.model else "")


def _gate(passed: Optional[bool]) -> str:
    return "baseline" if passed is None else ("pass" if passed else "FAIL")


def render_comparison(c: Comparison) -> str:
    """A plain-text table: figure, A, B, change B - A with its interval, and the mark."""
    lines = [f"A: {c.a} (round {c.roundA}, gate {_gate(c.gateA)}, judge {_judge(c.judgeA)})",
             f"B: {c.b} (round {c.roundB}, gate {_gate(c.gateB)}, judge {_judge(c.judgeB)})"]
    if not c.sameJudge:
        lines.append("warning: the runs were judged differently; their figures are not comparable")
    confidence = min((d.a.confidence for d in c.rates if d.a is not None and d.b is not None), default=0.95)
    rows = [("figure", "A", "B", f"B - A [{confidence:.0%} interval]", "")]
    for d in c.rates:
        if d.a is None and d.b is None:
            continue  # measured by neither run (sampled ASR when not asked for): no row
        change = "—" if d.difference is None else f"{d.difference * 100:+.1f} pts [{(d.low or 0) * 100:+.1f}, {(d.high or 0) * 100:+.1f}]"
        rows.append((d.figure, rate_text(d.a), rate_text(d.b), change, mark(d)))
    for n in c.numbers:
        if n.a is None and n.b is None:
            continue
        rows.append((n.figure, "—" if n.a is None else f"{n.a:.3f}", "—" if n.b is None else f"{n.b:.3f}",
                     "—" if n.difference is None else f"{n.difference:+.3f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines.append("")
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines += ["", "* significant: the difference's interval (Newcombe, unpaired) excludes 0; ns: not significant. "
              "ASR, refusal and judge errors: lower is better; QA accuracy: higher is better.",
              "Each figure is tested on its own, with no correction for the many compared: about 1 in 20 unchanged figures is marked by chance."]
    return "\n".join(lines) + "\n"
