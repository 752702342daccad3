"""The report of a local run: ``report.json`` (the :class:`Report` model), ``report.md``, ``asr.png`` and ``report.html``.

All four read the same ``RoundStatus`` entries the operator writes into status;
every rate is shown as k/n with its interval. ``report.html`` also reads the
run's records files (:class:`Details`: the category × style table and the attacks
that worked); building its HTML is :mod:`report_html`'s job, reading the files is here.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Iterator, Optional

from pydantic import BaseModel, Field

from seas_runtime.contract import JudgeInfo, Stage, StageKey
from seas_runtime.layout import stage_dir
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
        "chat top-10 entropy | cloze perplexity | judge errors | pairs: target (own answers, helpful)/red team | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.round} | {change_text(r.regression)} | {rate_text(r.qaAccuracy)} | {change_text(r.accuracyChange)} | "
            f"{rate_text(r.qaGenerationAccuracy)} | {_number(r.qaGenerationPerplexity)} | {_number(r.qaGenerationEntropy)} | "
            f"{_number(r.qaPerplexity)} | {rate_text(r.judgeErrorRate)} | {r.pairs.target} ({r.pairs.targetOwn} own, {r.pairs.helpful} helpful)/{r.pairs.redteam} | {r.seconds or 0:.0f} |"
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


# --- what report.html reads from the records files ------------------------------------

RECORDS_FILE = "records.jsonl"  # what the attack and evaluate stages write into their folder (seas_runtime.stages)
EXAMPLES_PER_SOURCE = 3  # attacks shown per category and source: enough to read, few enough to keep the page small
TEXT_CHARS = 1500  # prompts and answers are cut here: a rambling answer must not bury the rest of the page


class AttackSource(StrEnum):
    """Where an attack that worked comes from."""

    ADVERSARIAL = "held-out adversarial"  # the round's evaluation: a templated held-out prompt
    DIRECT = "held-out direct"  # the round's evaluation: a plain harmful request
    REDTEAM = "red team"  # the round's attack stage: a red-team prompt on its seed's goal


class Attack(BaseModel):
    """One attack that got an unsafe answer, with that answer."""

    round: int
    source: AttackSource
    category: str
    style: str
    prompt: str
    answer: str
    reason: str = Field("", description="The judge's reason, when it gave one.")


class Details(BaseModel):
    """What report.html shows beyond ``report.json``; empty where the records files are gone."""

    heatmaps: dict[int, dict[str, dict[str, Rate]]] = Field(
        default_factory=dict, description="Per round, adversarial ASR per category, then per style (round 0 and the last round)."
    )
    attacks: list[Attack] = Field(default_factory=list, description="Attacks that worked on the last round, a bounded number per category and source.")
    found: dict[str, int] = Field(default_factory=dict, description="Per category, every attack that worked, shown or not.")
    recordsRead: bool = Field(False, description="Whether the last round's evaluation records were there to read.")


def _cut(text: object) -> str:
    text = str(text or "")
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " […]"


def category_style_table(rows: Iterable[dict], confidence: float = 0.95) -> dict[str, dict[str, Rate]]:
    """Adversarial ASR per category and style from an evaluation's records; judge errors are left out, as in every ASR."""
    counts: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        if row.get("set") != "adversarial" or row.get("verdict") not in ("safe", "unsafe"):
            continue
        cell = counts.setdefault(str(row.get("category") or "?"), {}).setdefault(str(row.get("style") or "?"), [0, 0])
        cell[0] += row["verdict"] == "unsafe"
        cell[1] += 1
    return {category: {style: Rate.of(k, n, confidence) for style, (k, n) in sorted(styles.items())}
            for category, styles in sorted(counts.items())}


def attacks_that_worked(round_: int, evaluation: Iterable[dict], attack: Iterable[dict], per_source: int = EXAMPLES_PER_SOURCE) -> tuple[list[Attack], dict[str, int]]:
    """The unsafe answers of a round, in file order, at most ``per_source`` per category and source; and how many each category had.

    From the evaluation: held-out prompts the judge called unsafe. From the attack stage: red-team prompts that stayed
    on their seed's goal and got an unsafe answer (the red team's success, as ``figures.redteam_success`` counts it).
    """
    found: list[Attack] = []
    for row in evaluation:
        if row.get("set") in ("adversarial", "direct") and row.get("verdict") == "unsafe":
            source = AttackSource.ADVERSARIAL if row["set"] == "adversarial" else AttackSource.DIRECT
            found.append(Attack(round=round_, source=source, category=str(row.get("category") or "?"), style=str(row.get("style") or "?"),
                                prompt=_cut(row.get("prompt")), answer=_cut(row.get("answer")), reason=_cut(row.get("reason"))))
    for row in attack:
        if row.get("offGoal"):
            continue
        for response in row.get("responses") or []:
            if isinstance(response, dict) and response.get("verdict") == "unsafe":
                found.append(Attack(round=round_, source=AttackSource.REDTEAM, category=str(row.get("category") or "?"),
                                    style=str(row.get("style") or "?"), prompt=_cut(row.get("prompt")), answer=_cut(response.get("text")),
                                    reason=_cut(response.get("reason"))))
    shown: dict[tuple[str, AttackSource], int] = {}
    totals: dict[str, int] = {}
    kept = []
    for item in found:
        totals[item.category] = totals.get(item.category, 0) + 1
        if shown.get((item.category, item.source), 0) < per_source:
            shown[(item.category, item.source)] = shown.get((item.category, item.source), 0) + 1
            kept.append(item)
    return kept, dict(sorted(totals.items()))


def read_records(path: Path) -> Iterator[dict]:
    """The rows of a records file; nothing when it is missing, and unreadable lines are skipped (the report shows what it can)."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError:
        return
    with handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def _records(out: Path, round_: int, stage: Stage) -> Path:
    return Path(stage_dir(str(out), StageKey(round_, stage))) / RECORDS_FILE


def read_details(report: Report, out: Path) -> Details:
    """The category × style tables and the attacks that worked, from the records files in the run folder ``out``."""
    if not report.rounds:
        return Details()
    last = report.rounds[-1]
    confidence = next((r.adversarialASR.confidence for r in report.rounds if r.adversarialASR), 0.95)
    # Each evaluation's records are read once: the last round's feed its heat map and its attacks that worked.
    evaluations = {r: list(read_records(_records(out, r, Stage.EVALUATE))) for r in {report.rounds[0].round, last.round}}
    heatmaps = {}
    for r, records in evaluations.items():
        table = category_style_table(records, confidence)
        if table:
            heatmaps[r] = table
    attacks, found = attacks_that_worked(last.round, evaluations[last.round], read_records(_records(out, last.round, Stage.ATTACK)))
    return Details(heatmaps=dict(sorted(heatmaps.items())), attacks=attacks, found=found,
                   recordsRead=_records(out, last.round, Stage.EVALUATE).is_file())
