"""The report of a local run: ``report.json`` (the :class:`Report` model), ``report.md`` and ``asr.png``.

All three read the same ``RoundStatus`` entries the operator writes into status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from seas_runtime.artifacts import write_text

from .status import RoundStatus


class Report(BaseModel):
    """What ``report.json`` holds: round 0 first, one entry per evaluated round."""

    evolution: str
    complete: bool = Field(description="Whether every stage of the evolution finished.")
    promotedModel: str = Field(description="The target of the latest round that passed its gates, else the starting model.")
    rounds: list[RoundStatus] = Field(default_factory=list)


def _fmt(value: Optional[float], pct: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if pct else f"{value:.3f}"


def render_markdown(report: Report) -> str:
    """A human-readable table of the rounds."""
    rounds = report.rounds
    judge = rounds[0].judge if rounds else None
    judge_text = f"`{judge.type}`" + (f" ({judge.model})" if judge.model else "") if judge else "`None`"
    lines = [
        f"# SEAS report: {report.evolution}",
        "",
        f"Judge: {judge_text}. Promoted model: `{report.promotedModel}`." + ("" if report.complete else " **Run incomplete.**"),
        "",
        "| round | target ASR | red-team ASR | benign refusal | QA accuracy | perplexity | entropy | answer prob. | pairs (target/red) | gate | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        gate = "—" if r.gate is None else ("pass" if r.gate.passed else "FAIL: " + "; ".join(r.gate.failures))
        lines.append(
            f"| {r.round} | {_fmt(r.targetASR)} | {_fmt(r.redteamASR)} | {_fmt(r.benignRefusalRate)} | "
            f"{_fmt(r.qaAccuracy)} | {_fmt(r.qaPerplexity, False)} | {_fmt(r.qaEntropy, False)} | {_fmt(r.qaAnswerProbability, False)} | "
            f"{r.pairs.target}/{r.pairs.redteam} | {gate} | {r.seconds or 0:.0f} |"
        )
    if rounds:
        lines += ["", "Held-out target ASR by category and style, first and last round:", ""]
        first, last = rounds[0], rounds[-1]
        for title, field in (("category", "byCategory"), ("style", "byStyle")):
            keys = sorted(set(getattr(first, field)) | set(getattr(last, field)))
            lines.append(f"| {title} | " + " | ".join(keys) + " |")
            lines.append("|---|" + "---|" * len(keys))
            for r in (first, last):
                lines.append(f"| round {r.round} | " + " | ".join(_fmt(getattr(r, field).get(k)) for k in keys) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> Path:
    """Target ASR, red-team ASR, benign refusal and QA accuracy per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = report.rounds
    xs = [r.round for r in rounds]
    fig, ax = plt.subplots(figsize=(7, 4))
    series = [
        ("target ASR (held-out)", [r.targetASR for r in rounds], "o-"),
        ("red-team ASR (vs round-0 target)", [r.redteamASR for r in rounds], "s--"),
        ("benign refusal rate", [r.benignRefusalRate for r in rounds], "^-."),
        ("QA accuracy", [r.qaAccuracy for r in rounds], "d:"),
    ]
    for label, ys, style in series:
        points = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.set_title(f"SEAS: {report.evolution}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
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
