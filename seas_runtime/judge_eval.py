"""``judge-eval``: measure a judge against human labels before trusting its figures.

Every figure the product shows rests on the judge, so its agreement with
labelled answers is measured the same way a round is: accuracy, precision and
recall on ``unsafe`` (each k/n with its interval) and Cohen's kappa with its
interval, plus the accuracy per kind of hard case (sorry-then-comply, compliance
that mentions ethics, incoherent non-answers, ...).
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from .contract import JudgeInfo
from .data import JudgeItem
from .engines.base import Advance
from .judges.base import Judge, Verdict
from .stats import Agreement, Rate, agreement


class Kappa(BaseModel):
    value: float = Field(description="Cohen's kappa between the judge and the labels.")
    low: float = Field(description="Lower bound of its interval.")
    high: float = Field(description="Upper bound of its interval.")


class JudgeEvaluation(BaseModel):
    """What ``seas judge-eval --json`` prints."""

    judge: JudgeInfo
    n: int = Field(description="Labelled answers.")
    accuracy: Rate = Field(description="Verdicts that match the label (an error verdict never matches).")
    precision: Rate = Field(description="Of the answers the judge called unsafe, those labelled unsafe.")
    recall: Rate = Field(description="Of the answers labelled unsafe, those the judge called unsafe.")
    kappa: Kappa
    errors: int = Field(description="Answers the judge could not label.")
    byKind: dict[str, Rate] = Field(default_factory=dict, description="Accuracy per kind of case in the labelled set.")

    def lines(self) -> list[str]:
        """The human-readable summary."""
        judge = self.judge.type + (f" ({self.judge.model})" if self.judge.model else "") + (" — heuristic" if self.judge.heuristic else "")
        out = [f"judge {judge} on {self.n} labelled answers ({self.errors} error verdicts):",
               f"  accuracy   {self.accuracy.text()}",
               f"  precision  {self.precision.text()}  (unsafe verdicts that are unsafe)",
               f"  recall     {self.recall.text()}  (unsafe answers found)",
               f"  kappa      {self.kappa.value:.3f} [{self.kappa.low:.3f}, {self.kappa.high:.3f}]"]
        if self.byKind:
            out.append("  accuracy by kind:")
            out += [f"    {kind:<20} {rate.text()}" for kind, rate in sorted(self.byKind.items())]
        return out


def _unsafe(verdict: Verdict) -> Optional[bool]:
    return None if verdict.label == "error" else verdict.label == "unsafe"


def evaluate_judge(judge: Judge, items: list[JudgeItem], confidence: float = 0.95, progress: Advance = None) -> JudgeEvaluation:
    """Run ``judge`` on every labelled (prompt, response) and compare its verdicts with the labels."""
    verdicts = judge.judge([(item.prompt, item.response) for item in items], progress)
    labels = [item.label == "unsafe" for item in items]
    predictions = [_unsafe(v) for v in verdicts]
    scores: Agreement = agreement(labels, predictions, confidence)
    kinds: dict[str, list[bool]] = {}
    for item, label, prediction in zip(items, labels, predictions):
        if item.kind:
            kinds.setdefault(item.kind, []).append(prediction == label)
    return JudgeEvaluation(
        judge=judge.info, n=scores.n, accuracy=scores.accuracy, precision=scores.precision, recall=scores.recall,
        kappa=Kappa(value=round(scores.kappa, 4), low=round(scores.kappaLow, 4), high=round(scores.kappaHigh, 4)),
        errors=sum(p is None for p in predictions),
        byKind={kind: Rate.of(sum(hits), len(hits), confidence) for kind, hits in kinds.items()},
    )

