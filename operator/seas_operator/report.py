"""The report of a local run: report.json, report.md and asr.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seas_runtime.artifacts import write_json, write_text


def build_report(evolution: str, summaries: list[dict[str, Any]], promoted: str, complete: bool) -> dict[str, Any]:
    """The report document: round 0 first, one entry per evaluated round."""
    return {"evolution": evolution, "complete": complete, "promoted_model": promoted, "rounds": summaries}


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if pct else f"{value:.3f}"


def render_markdown(report: dict[str, Any]) -> str:
    """A human-readable table of the rounds."""
    rounds = report["rounds"]
    judge = rounds[0]["judge"] if rounds else {}
    lines = [
        f"# SEAS report: {report['evolution']}",
        "",
        f"Judge: `{judge.get('type')}`" + (f" ({judge.get('model')})" if judge.get("model") else "") + ". "
        f"Promoted model: `{report['promoted_model']}`." + ("" if report["complete"] else " **Run incomplete.**"),
        "",
        "| round | target ASR | red-team ASR | benign refusal | QA accuracy | perplexity | entropy | answer prob. | pairs (target/red) | gate | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        k = r["knowledge"]
        gate = "—" if r["gate"] is None else ("pass" if r["gate"]["passed"] else "FAIL: " + "; ".join(r["gate"]["failures"]))
        lines.append(
            f"| {r['round']} | {_fmt(r['target_asr'])} | {_fmt(r['redteam_asr'])} | {_fmt(r['benign_refusal_rate'])} | "
            f"{_fmt(k['accuracy'])} | {_fmt(k['perplexity'], False)} | {_fmt(k['entropy'], False)} | {_fmt(k['probability'], False)} | "
            f"{r['pairs']['target']}/{r['pairs']['redteam']} | {gate} | {r['seconds']:.0f} |"
        )
    if rounds:
        lines += ["", "Held-out target ASR by category and style, first and last round:", ""]
        first, last = rounds[0], rounds[-1]
        for name in ("by_category", "by_style"):
            keys = sorted(set(first[name]) | set(last[name]))
            lines.append(f"| {name.replace('by_', '')} | " + " | ".join(keys) + " |")
            lines.append("|---|" + "---|" * len(keys))
            for r in (first, last):
                lines.append(f"| round {r['round']} | " + " | ".join(_fmt(r[name].get(k)) for k in keys) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Target ASR, red-team ASR, benign refusal and QA accuracy per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = report["rounds"]
    xs = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(7, 4))
    series = [
        ("target ASR (held-out)", [r["target_asr"] for r in rounds], "o-"),
        ("red-team ASR (vs round-0 target)", [r["redteam_asr"] for r in rounds], "s--"),
        ("benign refusal rate", [r["benign_refusal_rate"] for r in rounds], "^-."),
        ("QA accuracy", [r["knowledge"]["accuracy"] for r in rounds], "d:"),
    ]
    for label, ys, style in series:
        points = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.set_title(f"SEAS: {report['evolution']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write report.json, report.md and asr.png into ``out``."""
    write_json(out / "report.json", report)
    write_text(out / "report.md", render_markdown(report))
    if report["rounds"]:
        plot(report, out / "asr.png")
