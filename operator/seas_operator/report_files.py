"""Writing a run's report files: report.json, report.md, asr.png and report.html.

Its own module because it joins ``report`` (the models, Markdown and plot) and
``report_html`` (which builds on those models).
"""

from __future__ import annotations

from pathlib import Path

from seas_runtime.artifacts import write_text

from .report import Report, plot, read_details, render_markdown
from .report_html import render_html


def write_report(report: Report, out: Path) -> None:
    """Write report.json, report.md, asr.png and report.html into ``out`` (the run folder, whose records report.html reads)."""
    write_text(out / "report.json", report.model_dump_json(indent=2) + "\n")
    write_text(out / "report.md", render_markdown(report))
    if report.rounds:
        plot(report, out / "asr.png")
    write_text(out / "report.html", render_html(report, read_details(report, out)))
