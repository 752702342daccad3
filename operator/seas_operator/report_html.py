"""``report.html``: one self-contained page per run, built from the report and its details (pure: inputs -> str).

The page loads nothing: no script, no external stylesheet, font or image. The
plots are inline SVG written here (the control plane has no plotting library),
so the file can be mailed, archived or opened offline and reads the same.

Every rate is shown as k/n with its interval; model output (prompts, answers,
judge reasons) and every name from the spec are HTML-escaped. The attacks that
worked sit behind a visible content warning, collapsed in ``<details>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Callable, Optional, Sequence

from seas_runtime.stats import PairedChange, Rate

from .report import Attack, AttackSource, Details, Report
from .status import RoundStatus


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _measured(rate: Optional[Rate]) -> bool:
    return rate is not None and bool(rate.n) and rate.rate is not None


def rate_cell(rate: Optional[Rate]) -> str:
    """A table cell ``k/n  rate  [low, high]``, carrying k and n as data attributes; a dash when nothing was measured."""
    if not _measured(rate):
        return '<td class="none">—</td>'
    assert rate is not None and rate.rate is not None
    return (f'<td class="rate" data-k="{rate.k}" data-n="{rate.n}"><span class="kn">{rate.k}/{rate.n}</span> '
            f'<span class="pct">{_pct(rate.rate)}</span> <span class="ci">[{(rate.low or 0) * 100:.1f}, {(rate.high or 0) * 100:.1f}]</span></td>')


def change_cell(change: Optional[PairedChange]) -> str:
    """A paired change ``+8.3 pts [+2.1, +14.5] p=0.021``; marked and classed by direction when significant."""
    if change is None or change.difference is None:
        return '<td class="none">—</td>'
    text = (f"{change.difference * 100:+.1f} pts [{(change.low or 0) * 100:+.1f}, {(change.high or 0) * 100:+.1f}] "
            f"p={change.pValue:.2g} ({change.b} worse / {change.c} better of {change.n})")
    if not change.significant:
        return f'<td class="change">{_e(text)}</td>'
    return f'<td class="change significant {change.direction}"><strong>{_e(text)}</strong> significant, {change.direction}</td>'


def _number_cell(value: Optional[float]) -> str:
    return '<td class="none">—</td>' if value is None else f'<td class="number">{value:.3f}</td>'


# --- plots (inline SVG) ---------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a rate plot: a label, its colour and dash pattern, and the rate per round."""

    label: str
    color: str
    dash: str
    points: tuple[tuple[int, Rate], ...]


ASR_SERIES = (
    ("direct ASR", "directASR", "#1f4e9c", ""),
    ("adversarial ASR", "adversarialASR", "#c0392b", ""),
    ("sampled ASR", "sampledASR", "#8e44ad", "6 3"),
    ("red-team ASR (round-0 target)", "redteamASR", "#e67e22", "2 3"),
    ("attack ASR (red team's prompts)", "attackASR", "#16a085", "8 3 2 3"),
)
SIDE_SERIES = (
    ("benign refusal", "benignRefusalRate", "#1e8449", ""),
    ("contrast refusal", "contrastRefusalRate", "#148f9c", "6 3"),
    ("QA accuracy (cloze)", "qaAccuracy", "#7b4a2a", ""),
    ("QA accuracy (chat)", "qaGenerationAccuracy", "#c2185b", "2 3"),
    ("judge errors", "judgeErrorRate", "#777777", "1 3"),
)


def series_of(rounds: Sequence[RoundStatus], table: Sequence[tuple[str, str, str, str]]) -> list[Series]:
    """The measured rates of ``rounds`` as plot series, one per row of ``table`` (label, field, colour, dash); empty ones left out."""
    out = []
    for label, field, color, dash in table:
        points = tuple((r.round, getattr(r, field, None)) for r in rounds if _measured(getattr(r, field, None)))
        if points:
            out.append(Series(label, color, dash, points))
    return out


def rate_plot(plot_id: str, title: str, rounds: Sequence[int], series: Sequence[Series], level: str = "95%") -> str:
    """A line plot of rates (0-100%) per round, each point with its interval as an error bar and its k/n in a tooltip."""
    if not series or not rounds:
        return f'<p class="none" id="{_e(plot_id)}">Nothing measured yet.</p>'
    width, height, left, right, top, bottom = 600, 320, 50, 225, 34, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    index = {r: i for i, r in enumerate(rounds)}

    def x(r: int) -> float:
        return left + plot_w / 2 if len(rounds) == 1 else left + 24 + (plot_w - 48) * index[r] / (len(rounds) - 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [f'<svg id="{_e(plot_id)}" class="plot" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
             f'<title>{_e(title)}</title>',
             f'<text x="{left}" y="20" font-size="14" font-weight="bold" fill="#222">{_e(title)}</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{tick * 100:.0f}%</text>')
    for r in rounds:
        parts.append(f'<text x="{x(r):.1f}" y="{top + plot_h + 18}" font-size="11" text-anchor="middle" fill="#555">{r}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" font-size="12" text-anchor="middle" fill="#333">round</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for j, s in enumerate(series):
        dx = (j - (len(series) - 1) / 2) * 5  # side by side, so that the bars do not hide each other
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        coords = " ".join(f"{x(r) + dx:.1f},{y(rate.rate or 0):.1f}" for r, rate in s.points)
        parts.append(f'<g class="series" data-label="{_e(s.label)}">')
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>')
        for r, rate in s.points:
            cx, low, high = x(r) + dx, y(rate.low or 0), y(rate.high or 0)
            parts.append(f'<line class="interval" x1="{cx:.1f}" x2="{cx:.1f}" y1="{low:.1f}" y2="{high:.1f}" stroke="{s.color}" stroke-width="1.5"/>')
            for end in (low, high):
                parts.append(f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{end:.1f}" y2="{end:.1f}" stroke="{s.color}" stroke-width="1.5"/>')
            parts.append(f'<circle class="point" cx="{cx:.1f}" cy="{y(rate.rate or 0):.1f}" r="4" fill="{s.color}">'
                         f'<title>{_e(s.label)}, round {r}: {_e(rate.text())}</title></circle>')
        parts.append("</g>")
        ly = top + 12 + j * 20
        parts.append(f'<line x1="{left + plot_w + 14}" x2="{left + plot_w + 40}" y1="{ly}" y2="{ly}" stroke="{s.color}" stroke-width="2.5"{dash}/>')
        parts.append(f'<text x="{left + plot_w + 46}" y="{ly + 4}" font-size="11" fill="#222">{_e(s.label)}</text>')
    parts.append(f'<text x="{left + plot_w + 14}" y="{top + 16 + len(series) * 20}" font-size="10" fill="#666">bars: {level} interval</text>')
    parts.append("</svg>")
    return "".join(parts)


def heat_color(rate: Optional[Rate]) -> tuple[str, str]:
    """Fill and text colour of a heat-map cell: from near white (0%) to dark red (100%); grey when nothing was measured."""
    if not _measured(rate):
        return "#e6e6e6", "#777"
    assert rate is not None and rate.rate is not None
    light, dark = (255, 245, 240), (165, 15, 21)
    fill = "#" + "".join(f"{round(a + (b - a) * rate.rate):02x}" for a, b in zip(light, dark))
    return fill, "#fff" if rate.rate > 0.55 else "#222"


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def heatmap(svg_id: str, title: str, rows: Sequence[str], columns: Sequence[str], cell: Callable[[str, str], Optional[Rate]],
            level: str = "95%") -> str:
    """A grid of rates, rows × columns, each cell coloured by its rate and showing k/n, the rate and its interval."""
    cell_w, cell_h, head_h = 92, 54, 92
    label_w = min(200, 16 + 7 * max((len(r) for r in rows), default=4))
    width, height = label_w + cell_w * len(columns) + 90, head_h + cell_h * len(rows) + 28  # room for the slanted last column name
    parts = [f'<svg id="{_e(svg_id)}" class="heatmap" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
             f'<title>{_e(title)}</title>',
             f'<text x="2" y="16" font-size="13" font-weight="bold" fill="#222">{_e(title)}</text>']
    for j, column in enumerate(columns):
        cx, cy = label_w + cell_w * j + cell_w / 2, head_h - 8
        # slanted, so that long style names fit above narrow cells
        parts.append(f'<text class="column" x="{cx:.0f}" y="{cy}" transform="rotate(-30 {cx:.0f} {cy})" font-size="11" fill="#333">'
                     f'{_e(_short(column, 24))}<title>{_e(column)}</title></text>')
    for i, row in enumerate(rows):
        cy = head_h + cell_h * i
        parts.append(f'<text class="row" x="{label_w - 8}" y="{cy + cell_h / 2 + 4:.0f}" font-size="11" text-anchor="end" fill="#333">'
                     f'{_e(_short(row, 26))}<title>{_e(row)}</title></text>')
        for j, column in enumerate(columns):
            rate = cell(row, column)
            fill, ink = heat_color(rate)
            x0 = label_w + cell_w * j
            parts.append(f'<g class="cell" data-row="{_e(row)}" data-column="{_e(column)}">')
            parts.append(f'<rect x="{x0 + 1}" y="{cy + 1}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}" stroke="#fff"/>')
            if rate is not None and _measured(rate):
                assert rate.rate is not None
                parts.append(f'<title>{_e(row)} × {_e(column)}: {_e(rate.text())}</title>')
                parts.append(f'<text x="{x0 + cell_w / 2:.0f}" y="{cy + 18}" font-size="12" font-weight="bold" text-anchor="middle" fill="{ink}">'
                             f'{rate.k}/{rate.n}</text>')
                parts.append(f'<text x="{x0 + cell_w / 2:.0f}" y="{cy + 32}" font-size="11" text-anchor="middle" fill="{ink}">{_pct(rate.rate)}</text>')
                parts.append(f'<text x="{x0 + cell_w / 2:.0f}" y="{cy + 45}" font-size="9.5" text-anchor="middle" fill="{ink}">'
                             f'[{(rate.low or 0) * 100:.0f}, {(rate.high or 0) * 100:.0f}]</text>')
            else:
                parts.append(f'<text x="{x0 + cell_w / 2:.0f}" y="{cy + 32}" font-size="12" text-anchor="middle" fill="{ink}">—</text>')
            parts.append("</g>")
    parts.append(f'<text x="2" y="{height - 8}" font-size="10" fill="#666">cells: unsafe/judged, the rate and its {level} interval in %; '
                 "darker is less safe</text>")
    parts.append("</svg>")
    return "".join(parts)


ALL_STYLES, ALL_CATEGORIES = "all styles", "all categories"


def round_heatmap(entry: RoundStatus, table: dict[str, dict[str, Rate]], level: str = "95%") -> str:
    """The category × style heat map of a round, with the round's breakdowns as the margins (``all styles``, ``all categories``).

    Without the cross table (its records are gone), the breakdowns alone are drawn as a column and a row.
    """
    title = f"Adversarial ASR, round {entry.round}: category × style"
    if not table:
        categories, styles = sorted(entry.byCategory), sorted(entry.byStyle)
        if not categories and not styles:
            return ""
        return (heatmap(f"heatmap-r{entry.round}-category", f"Adversarial ASR, round {entry.round}, by category", categories, [ALL_STYLES],
                        lambda row, _column: entry.byCategory.get(row), level)
                + heatmap(f"heatmap-r{entry.round}-style", f"Adversarial ASR, round {entry.round}, by style", [ALL_CATEGORIES], styles,
                          lambda _row, column: entry.byStyle.get(column), level))
    categories = sorted(set(table) | set(entry.byCategory))
    styles = sorted({style for row in table.values() for style in row} | set(entry.byStyle))

    def cell(row: str, column: str) -> Optional[Rate]:
        if row == ALL_CATEGORIES:
            return entry.adversarialASR if column == ALL_STYLES else entry.byStyle.get(column)
        if column == ALL_STYLES:
            return entry.byCategory.get(row)
        return table.get(row, {}).get(column)

    return heatmap(f"heatmap-r{entry.round}", title, [*categories, ALL_CATEGORIES], [*styles, ALL_STYLES], cell, level)


# --- sections -------------------------------------------------------------------------


FIGURE_COLUMNS = (
    ("direct ASR", "directASR"),
    ("adversarial ASR", "adversarialASR"),
    ("sampled ASR", "sampledASR"),
    ("red-team ASR", "redteamASR"),
    ("attack ASR", "attackASR"),
    ("contrast refusal", "contrastRefusalRate"),
    ("benign refusal", "benignRefusalRate"),
    ("judge errors", "judgeErrorRate"),
)


def _figures_table(rounds: Sequence[RoundStatus]) -> str:
    # A column no round measured (sampled ASR when not asked for) is left out rather than shown as dashes.
    columns = [(title, field) for title, field in FIGURE_COLUMNS if any(_measured(getattr(r, field, None)) for r in rounds)]
    head = "".join(f"<th>{_e(title)}</th>" for title, _ in columns)
    rows = []
    for r in rounds:
        cells = "".join(rate_cell(getattr(r, field, None)) for _, field in columns)
        rows.append(f'<tr data-round="{r.round}"><th scope="row">{r.round}</th>{cells}{change_cell(r.regression)}'
                    f'<td class="number">{r.pairs.target} ({r.pairs.targetOwn} own, {r.pairs.helpful} helpful)/{r.pairs.redteam}</td><td class="number">{r.seconds or 0:.0f}</td></tr>')
    return (f'<table id="figures" class="figures"><thead><tr><th>round</th>{head}<th>unsafe vs previous round (paired)</th>'
            f'<th>pairs: target (own answers, helpful)/red team</th><th>seconds</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _knowledge_table(rounds: Sequence[RoundStatus]) -> str:
    rows = []
    for r in rounds:
        rows.append(f'<tr data-round="{r.round}"><th scope="row">{r.round}</th>{rate_cell(r.qaAccuracy)}{rate_cell(r.qaAccuracyNorm)}'
                    f'{change_cell(r.accuracyChange)}{_number_cell(r.qaAnswerProbability)}{_number_cell(r.qaEntropy)}{_number_cell(r.qaPerplexity)}'
                    f'{rate_cell(r.qaGenerationAccuracy)}{_number_cell(r.qaGenerationPerplexity)}{_number_cell(r.qaGenerationEntropy)}'
                    f'{_number_cell(r.qaGenerationTopProbability)}</tr>')
    return ('<table id="knowledge" class="figures"><thead><tr><th>round</th><th>QA accuracy (cloze)</th><th>acc_norm</th>'
            '<th>accuracy drop vs round 0 (paired)</th><th>answer probability</th><th>entropy (nats)</th><th>perplexity</th>'
            '<th>QA accuracy (chat)</th><th>chat perplexity</th><th>chat top-10 entropy</th><th>chat top-token probability</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def gate_decision(entry: RoundStatus) -> tuple[str, str]:
    """(css class, words) for a round's gate: baseline, pass, FAIL or not decided."""
    if entry.gate is None:  # a training run's round 0 is the baseline; mode evaluate gates its round 0
        return ("baseline", "baseline (no gate)") if entry.round == 0 else ("undecided", "not decided")
    return ("pass", "pass") if entry.gate.passed else ("fail", "FAIL")


def _gates_table(report: Report) -> str:
    rows = []
    for r in report.rounds:
        css, words = gate_decision(r)
        reasons = "".join(f"<li>{_e(f)}</li>" for f in (r.gate.failures if r.gate else []))
        promoted = ' <span class="promoted">promoted</span>' if r.targetModel and r.targetModel == report.promotedModel else ""
        regressed = '<span class="regressed">regressed: significantly less safe than the round before</span>' if r.regressed else ""
        rows.append(f'<tr data-round="{r.round}" class="{css}"><th scope="row">{r.round}</th><td class="decision {css}">{words}{promoted}</td>'
                    f'<td>{f"<ul>{reasons}</ul>" if reasons else ("every gate held" if css == "pass" else "")}{regressed}</td>'
                    f'<td><code>{_e(r.targetModel or "—")}</code></td></tr>')
    return ('<table id="gates" class="gates"><thead><tr><th>round</th><th>decision</th><th>reasons</th><th>target model</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _attack_html(attack: Attack) -> str:
    reason = f'<p class="reason">judge: {_e(attack.reason)}</p>' if attack.reason else ""
    return (f'<article class="attack" data-source="{_e(attack.source.value)}"><p class="meta">{_e(attack.source.value)} · style '
            f'<code>{_e(attack.style)}</code> · round {attack.round}</p><h4>Prompt</h4><pre>{_e(attack.prompt)}</pre>'
            f"<h4>Target's answer</h4><pre>{_e(attack.answer)}</pre>{reason}</article>")


def _attacks_section(report: Report, details: Details) -> str:
    last = report.rounds[-1].round
    warning = ('<p class="warning" role="note"><strong>Content warning:</strong> below are prompts written to make a model misbehave '
               "and the unsafe answers they got, verbatim. They may be offensive or harmful. Each category is collapsed; open it only "
               "if you need to read it.</p>")
    if not details.recordsRead:
        return f"{warning}<p class=\"none\">The records of round {last} are not in this folder, so no examples can be shown.</p>"
    if not details.attacks:
        return f'{warning}<p class="none">No attack got an unsafe answer in round {last}.</p>'
    sources = [s for s in AttackSource]
    blocks = []
    for category, total in details.found.items():
        shown = [a for a in details.attacks if a.category == category]
        shown.sort(key=lambda a: sources.index(a.source))  # held-out first, then the red team; file order within each
        blocks.append(f'<details class="category" data-category="{_e(category)}"><summary><code>{_e(category)}</code>: {total} '
                      f'unsafe answer{"s" if total != 1 else ""}, {len(shown)} shown</summary>{"".join(_attack_html(a) for a in shown)}</details>')
    return warning + "".join(blocks)


STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;color:#222;background:#fff;margin:0 auto;padding:18px 28px;max-width:1280px;font-size:14px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h4{font-size:12px;margin:8px 0 2px;color:#555}
table{border-collapse:collapse;margin:6px 0;font-size:12px}th,td{border:1px solid #d6d6d6;padding:4px 6px;vertical-align:top;text-align:left}
thead th{background:#f3f4f6}td.rate .kn{font-weight:bold}td.rate .ci{display:block;color:#666;font-size:11px}
td.none{color:#999;text-align:center}td.number{text-align:right}
td.significant.worse{background:#fdecea}td.significant.better{background:#e8f5e9}
.decision.pass{color:#1e8449;font-weight:bold}.decision.fail{color:#c0392b;font-weight:bold}.decision.baseline{color:#666}
.promoted{background:#1e8449;color:#fff;border-radius:3px;padding:0 5px;margin-left:6px;font-size:11px}
.regressed{color:#c0392b;font-weight:bold}
.verdict{padding:8px 12px;border-radius:4px;margin:10px 0;font-weight:bold}.verdict.pass{background:#e8f5e9;color:#1e6b38}
.verdict.fail{background:#fdecea;color:#a93226}.verdict.baseline,.verdict.undecided{background:#f3f4f6}
.meta{color:#555}.plots{display:flex;flex-wrap:wrap;gap:10px}svg{background:#fff}
.heatmaps{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.warning{background:#fff4e5;border-left:5px solid #e67e22;padding:8px 12px}
details.category{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 10px}summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:6px;margin:0;font-size:12px;max-height:18em;overflow:auto}
article.attack{border-top:1px dashed #ccc;padding:6px 0}p.reason{color:#666;font-size:12px;margin:4px 0}
"""


def render_html(report: Report, details: Optional[Details] = None) -> str:
    """The whole page: summary, figures per round, plots, category × style heat maps, gate decisions, attacks that worked."""
    details = details or Details()
    rounds = report.rounds
    title = f"SEAS report: {report.evolution}"
    judge = rounds[0].judge if rounds else None
    judge_text = "none" if judge is None else judge.type + (f" ({judge.model})" if judge.model else "")
    heuristic = " — a rule-based heuristic: read its figures with its measured agreement" if judge and judge.heuristic else ""
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>")
    parts = [head, f"<header><h1>{_e(title)}</h1>",
             f'<p class="meta">Judge: <code>{_e(judge_text)}</code>{_e(heuristic)}. Promoted model: <code>{_e(report.promotedModel)}</code>. '
             f"{len(rounds)} evaluated round{'s' if len(rounds) != 1 else ''}.</p>"]
    if not report.complete:
        parts.append('<p class="verdict fail" id="incomplete">Run incomplete: not every stage finished.</p>')
    if not rounds:
        parts.append('<p class="none">No round has been evaluated yet.</p></header></body></html>\n')
        return "".join(parts)
    last = rounds[-1]
    css, words = gate_decision(last)
    failures = "; ".join(last.gate.failures) if last.gate and last.gate.failures else ""
    parts.append(f'<p class="verdict {css}" id="verdict">Last round ({last.round}): {words}{_e(": " + failures) if failures else ""}</p></header>')
    confidence = next((r.adversarialASR.confidence for r in rounds if r.adversarialASR), 0.95)
    level = f"{confidence:.0%}"  # the interval's level follows evaluation.confidence
    parts.append(f'<section id="per-round"><h2>Figures per round</h2><p class="meta">Every rate is k/n, the rate and its {level} interval in %. '
                 "Changes are paired by prompt with the round before (unsafe answers) or by question with round 0 (wrong answers); "
                 "a significant one is marked.</p>" + _figures_table(rounds) + "</section>")
    numbers = [r.round for r in rounds]
    parts.append('<section id="plots"><h2>Rates by round</h2><div class="plots">'
                 + rate_plot("asr-plot", "Attack success rate by round", numbers, series_of(rounds, ASR_SERIES), level)
                 + rate_plot("side-plot", "Over-refusal, knowledge and judge errors by round", numbers, series_of(rounds, SIDE_SERIES), level)
                 + "</div></section>")
    maps = [round_heatmap(r, details.heatmaps.get(r.round, {}), level) for r in ([rounds[0], last] if last is not rounds[0] else [last])]
    maps = [m for m in maps if m]
    parts.append('<section id="heatmap"><h2>Adversarial ASR by category and style</h2>'
                 + (f'<div class="heatmaps">{"".join(maps)}</div>' if maps else '<p class="none">No per-category or per-style figures.</p>')
                 + "</section>")
    parts.append('<section id="gate-decisions"><h2>Gate decisions</h2><p class="meta">A gate passes only when the upper bound of the '
                 "figure's interval is within its limit; the latest round that passes is promoted.</p>" + _gates_table(report) + "</section>")
    parts.append('<section id="knowledge-drift"><h2>Knowledge drift</h2>' + _knowledge_table(rounds) + "</section>")
    parts.append(f'<section id="attacks"><h2>Attacks that worked in round {last.round}</h2>' + _attacks_section(report, details) + "</section>")
    parts.append("</body></html>\n")
    return "".join(parts)
