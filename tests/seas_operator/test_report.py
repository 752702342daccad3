"""The local run's report: report.json, report.md and asr.png."""

from __future__ import annotations

import json

from seas_operator.report import Report, render_markdown, write_report
from seas_operator.status import GateResult, PairCounts, RoundStatus
from seas_runtime.contract import JudgeInfo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def round_entry(r: int, asr, redteam, refusal: float, accuracy: float, gate=None, pairs=(0, 0)) -> RoundStatus:
    return RoundStatus(
        round=r, targetASR=asr, redteamASR=redteam, benignRefusalRate=refusal, judgeErrorRate=0.0,
        qaAccuracy=accuracy, qaPerplexity=12.3456, qaEntropy=1.2, qaAnswerProbability=0.41, accuracyDrop=0.0,
        byCategory={"fraud": asr or 0.0, "hate": 0.5}, byStyle={"role_play": asr or 0.0},
        pairs=PairCounts(target=pairs[0], redteam=pairs[1]), seconds=42.4, judge=JudgeInfo(type="refusal-match"),
        records=f"/runs/demo/r{r}/evaluate/records.jsonl", gate=gate,
        targetModel=None if r == 0 else f"/runs/demo/r{r}/train-target/model",
    )


def sample_report(complete: bool = True) -> Report:
    rounds = [
        round_entry(0, 0.625, None, 0.1, 0.55),
        round_entry(1, 0.4, 0.3, 0.15, 0.54, gate=GateResult(passed=False, failures=["target ASR 0.400 > 0.200"]), pairs=(20, 7)),
        round_entry(2, 0.125, 0.45, 0.2, 0.53, gate=GateResult(passed=True), pairs=(18, 9)),
    ]
    return Report(evolution="smollm2-demo", complete=complete, promotedModel="/runs/demo/r2/train-target/model", rounds=rounds)


def test_report_json_holds_the_status_round_fields(tmp_path):
    write_report(sample_report(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["evolution"] == "smollm2-demo" and data["complete"] is True
    assert data["promotedModel"] == "/runs/demo/r2/train-target/model"
    assert [r["round"] for r in data["rounds"]] == [0, 1, 2]
    assert set(data["rounds"][0]) == set(RoundStatus.model_fields)  # the same shape as status.rounds[]
    assert data["rounds"][2]["targetASR"] == 0.125 and data["rounds"][1]["gate"] == {"passed": False, "failures": ["target ASR 0.400 > 0.200"]}


def test_markdown_table_has_a_row_per_round_with_figures():
    text = render_markdown(sample_report())
    assert text.startswith("# SEAS report: smollm2-demo")
    assert "Judge: `refusal-match`" in text
    assert "Promoted model: `/runs/demo/r2/train-target/model`" in text
    assert "incomplete" not in text.lower()
    rows = [line for line in text.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 3
    assert "62.5%" in rows[0] and "—" in rows[0]  # no red-team ASR at round 0
    assert "FAIL: target ASR 0.400 > 0.200" in rows[1]
    assert "20/7" in rows[1]
    assert "12.5%" in rows[2] and "45.0%" in rows[2] and "pass" in rows[2] and "18/9" in rows[2]
    assert "12.346" in rows[2]  # perplexity, not a percentage
    # per-category and per-style ASR, first and last round
    assert "| category | fraud | hate |" in text
    assert "| round 0 | 62.5% | 50.0% |" in text
    assert "| round 2 | 12.5% | 50.0% |" in text


def test_incomplete_runs_are_flagged():
    assert "**Run incomplete.**" in render_markdown(sample_report(complete=False))


def test_judge_model_is_named():
    report = sample_report()
    for r in report.rounds:
        r.judge = JudgeInfo(type="llama-guard", model="meta-llama/Llama-Guard-3-8B")
    assert "Judge: `llama-guard` (meta-llama/Llama-Guard-3-8B)" in render_markdown(report)


def test_unjudged_round_renders_a_dash_not_a_crash():
    report = sample_report()
    report.rounds[1].targetASR = None
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| 1 "))
    assert row.split("|")[2].strip() == "—"


def test_write_report_writes_json_markdown_and_png(tmp_path):
    report = sample_report(complete=False)
    out = tmp_path / "out"
    write_report(report, out)
    assert Report.model_validate_json((out / "report.json").read_text(encoding="utf-8")) == report
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "smollm2-demo" in markdown and "Run incomplete" in markdown
    png = (out / "asr.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000
    # written atomically: no temp files left behind
    assert sorted(p.name for p in out.iterdir()) == ["asr.png", "report.json", "report.md"]


def test_write_report_overwrites_a_previous_report(tmp_path):
    write_report(sample_report(complete=False), tmp_path)
    write_report(sample_report(complete=True), tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["complete"] is True
    assert "incomplete" not in (tmp_path / "report.md").read_text().lower()


def test_report_without_rounds(tmp_path):
    report = Report(evolution="empty", complete=False, promotedModel="org/model")
    text = render_markdown(report)
    assert "# SEAS report: empty" in text and "Run incomplete" in text
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["rounds"] == []
