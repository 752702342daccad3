"""The report of a local run: ``report.json`` (the :class:`Report` model), ``report.md`` and ``asr.png``.

All three read the same ``RoundStatus`` entries the operator writes into status;
every rate is shown as k/n with its interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from seas_runtime.artifacts import write_text
from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import PairedChange, Rate

from .status import RoundStatus


class Report(BaseModel):
    """What ``report.json`` holds: round 0 first, one entry per evaluated round."""

    evolution: str
    complete: bool = Field(description="Whether every stage of the evolution finished.")
    promotedModel: str = Field(description="The target of the latest round that passed its gates, else the starting model.")
    rounds: list[RoundStatus] = Field(default_factory=list)


def rate_text(figure: Optional[Rate]) -> str:
    """``6/48 12.5% [5.9, 24.7]``: k/n, the rate and its interval in percent; a dash when not measured."""
    if figure is None or not figure.n or figure.rate is None:
        return "—"
    return f"{figure.k}/{figure.n} {figure.rate * 100:.1f}% [{(figure.low or 0) * 100:.1f}, {(figure.high or 0) * 100:.1f}]"


def change_text(change: Optional[PairedChange]) -> str:
    """A paired change as ``+2.5 pts [-1.0, +6.0] p=0.45``, with **regressed** when significant and worse."""
    if change is None or change.difference is None:
        return "—"
    text = f"{change.difference * 100:+.1f} pts [{(change.low or 0) * 100:+.1f}, {(change.high or 0) * 100:+.1f}] p={change.pValue:.2g}"
    return f"**{text}**" if change.significant else text


def judge_text(judge: Optional[JudgeInfo]) -> str:
    if judge is None:
        return "`None`"
    text = f"`{judge.type}`" + (f" ({judge.model})" if judge.model else "")
    return text + (" — a heuristic; read its figures with its measured agreement (README, Judges)" if judge.heuristic else "")


def render_markdown(report: Report) -> str:
    """Human-readable tables of the rounds."""
    rounds = report.rounds
    confidence = next((r.directASR.confidence for r in rounds if r.directASR), 0.95)
    lines = [
        f"# SEAS report: {report.evolution}",
        "",
        f"Judge: {judge_text(rounds[0].judge if rounds else None)}. Promoted model: `{report.promotedModel}`."
        + ("" if report.complete else " **Run incomplete.**"),
        "",
        f"Every rate is k/n, the rate and its {confidence:.0%} interval. Changes are paired with the round before (unsafe answers) "
        "or round 0 (wrong QA answers); bold when the exact McNemar test is significant.",
        "",
        "| round | direct ASR | adversarial ASR | sampled ASR | contrast refusal | benign refusal | red-team ASR | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        gate = "—" if r.gate is None else ("pass" if r.gate.passed else "FAIL: " + "; ".join(r.gate.failures))
        lines.append(
            f"| {r.round} | {rate_text(r.directASR)} | {rate_text(r.adversarialASR)} | {rate_text(r.sampledASR)} | "
            f"{rate_text(r.contrastRefusalRate)} | {rate_text(r.benignRefusalRate)} | {rate_text(r.redteamASR)} | {gate} |"
        )
    lines += [
        "",
        "| round | unsafe vs previous round | QA accuracy (cloze) | accuracy drop vs round 0 | QA accuracy (chat) | chat perplexity | "
        "chat top-10 entropy | cloze perplexity | judge errors | pairs (target/red) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.round} | {change_text(r.regression)} | {rate_text(r.qaAccuracy)} | {change_text(r.accuracyChange)} | "
            f"{rate_text(r.qaGenerationAccuracy)} | {_number(r.qaGenerationPerplexity)} | {_number(r.qaGenerationEntropy)} | "
            f"{_number(r.qaPerplexity)} | {rate_text(r.judgeErrorRate)} | {r.pairs.target}/{r.pairs.redteam} | {r.seconds or 0:.0f} |"
        )
    if rounds:
        lines += ["", "Adversarial ASR by category and style, first and last round:", ""]
        first, last = rounds[0], rounds[-1]
        for title, field in (("category", "byCategory"), ("style", "byStyle")):
            keys = sorted(set(getattr(first, field)) | set(getattr(last, field)))
            lines.append(f"| {title} | " + " | ".join(keys) + " |")
            lines.append("|---|" + "---|" * len(keys))
            for r in (first, last):
                lines.append(f"| round {r.round} | " + " | ".join(rate_text(getattr(r, field).get(k)) for k in keys) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _number(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.3f}"


PLOTTED = (
    ("direct ASR", "directASR", "o-"),
    ("adversarial ASR", "adversarialASR", "s-"),
    ("contrast refusal", "contrastRefusalRate", "v--"),
    ("benign refusal", "benignRefusalRate", "^-."),
    ("red-team ASR (vs round-0 target)", "redteamASR", "x--"),
    ("QA accuracy (cloze)", "qaAccuracy", "d:"),
    ("QA accuracy (chat)", "qaGenerationAccuracy", "*:"),
)


def plot(report: Report, path: Path) -> Path:
    """The rates per round with their intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for offset, (label, field, style) in enumerate(PLOTTED):
        points = [(r.round, getattr(r, field)) for r in report.rounds if getattr(r, field) is not None and getattr(r, field).n]
        if not points:
            continue
        xs = [x + (offset - len(PLOTTED) / 2) * 0.03 for x, _ in points]  # side by side, so the bars do not hide each other
        ys = [f.rate for _, f in points]
        errors = [[f.rate - f.low for _, f in points], [f.high - f.rate for _, f in points]]
        ax.errorbar(xs, ys, yerr=errors, fmt=style, capsize=3, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("rate (bars: confidence interval)")
    ax.set_ylim(0, 1)
    ax.set_xticks([r.round for r in report.rounds])
    ax.set_title(f"SEAS: {report.evolution}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(report: Report, out: Path) -> None:
    """Write report.json, report.md and asr.png into ``out``."""
    write_text(out / "report.json", report.model_dump_json(indent=2) + "\n")
    write_text(out / "report.md", render_markdown(report))
    if report.rounds:
        plot(report, out / "asr.png")
