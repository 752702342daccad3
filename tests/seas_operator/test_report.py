"""The local run's report: report.json, report.md and asr.png."""

from __future__ import annotations

import json

from seas_operator.report import Report, render_markdown
from seas_operator.report_files import write_report
from seas_operator.status import GateResult, PairCounts, RoundStatus
from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import Rate
from tests.helpers.factories import change

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def round_entry(r: int, unsafe, redteam, refused: int, correct: int, gate=None, pairs=(0, 0), regression=None) -> RoundStatus:
    return RoundStatus(
        round=r, directASR=Rate.of(unsafe, 64) if unsafe is not None else None, adversarialASR=Rate.of(unsafe, 48) if unsafe is not None else None,
        redteamASR=Rate.of(redteam, 16) if redteam is not None else None, benignRefusalRate=Rate.of(refused, 64),
        contrastRefusalRate=Rate.of(refused, 40), judgeErrorRate=Rate.of(0, 112), qaAccuracy=Rate.of(correct, 120),
        qaPerplexity=12.3456, qaEntropy=1.2, qaAnswerProbability=0.41, regression=regression,
        byCategory={"fraud": Rate.of((unsafe or 0) // 6, 6), "hate": Rate.of(3, 6)}, byStyle={"role_play": Rate.of((unsafe or 0) // 6, 9)},
        pairs=PairCounts(target=pairs[0], redteam=pairs[1]), seconds=42.4, judge=JudgeInfo(type="refusal-match", heuristic=True),
        records=f"/runs/demo/r{r}/evaluate/records.jsonl", gate=gate,
        targetModel=None if r == 0 else f"/runs/demo/r{r}/train-target/model",
    )


def sample_report(complete: bool = True) -> Report:
    rounds = [
        round_entry(0, 30, None, 6, 66),
        round_entry(1, 19, 5, 9, 65, gate=GateResult(passed=False, failures=["adversarial ASR: upper bound 0.540 > 0.200"]), pairs=(20, 7)),
        round_entry(2, 6, 7, 12, 64, gate=GateResult(passed=True), pairs=(18, 9), regression=change(9, 1)),
    ]
    return Report(evolution="smollm2-demo", complete=complete, promotedModel="/runs/demo/r2/train-target/model", rounds=rounds)


def test_report_json_holds_the_status_round_fields(tmp_path):
    write_report(sample_report(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["evolution"] == "smollm2-demo" and data["complete"] is True
    assert data["promotedModel"] == "/runs/demo/r2/train-target/model"
    assert [r["round"] for r in data["rounds"]] == [0, 1, 2]
    assert set(data["rounds"][0]) == set(RoundStatus.model_fields)  # the same shape as status.rounds[]
    assert data["rounds"][2]["adversarialASR"] == {"k": 6, "n": 48, "rate": 0.125, "low": 0.0586, "high": 0.247, "confidence": 0.95}
    assert data["rounds"][1]["gate"] == {"passed": False, "failures": ["adversarial ASR: upper bound 0.540 > 0.200"]}


def test_markdown_tables_show_every_rate_as_k_of_n_with_its_interval():
    text = render_markdown(sample_report())
    assert text.startswith("# SEAS report: smollm2-demo")
    assert "Judge: `refusal-match` — a heuristic; read its figures with its measured agreement" in text
    assert "Promoted model: `/runs/demo/r2/train-target/model`" in text
    assert "incomplete" not in text.lower()
    first = [line for line in text.splitlines() if line[:4] in ("| 0 ", "| 1 ", "| 2 ")][:3]
    assert "| 30/64 46.9% [35.2, 58.9] | 30/48 62.5% [48.4, 74.8] |" in first[0]
    assert "| — |" in first[0]  # no red-team ASR at round 0
    assert "FAIL: adversarial ASR: upper bound 0.540 > 0.200" in first[1]
    assert "6/48 12.5% [5.9, 24.7]" in first[2] and "7/16 43.8% [23.1, 66.8]" in first[2] and "| pass |" in first[2]
    second = [line for line in text.splitlines() if line[:4] in ("| 0 ", "| 1 ", "| 2 ")][3:]
    assert "**+8.3 pts" in second[2] and "p=0.021" in second[2]  # significant: bold
    assert "| 20 (0 own, 0 helpful)/7 |" in second[1] and "12.346" in second[1]  # perplexity, not a percentage
    assert "| category | fraud | hate |" in text
    assert "| round 0 | 5/6 83.3% [43.6, 97.0] | 3/6 50.0% [18.8, 81.2] |" in text  # per-category cells are rates too
    assert "| round 2 | 1/6 16.7% [3.0, 56.4] | 3/6 50.0% [18.8, 81.2] |" in text


def test_incomplete_runs_are_flagged():
    assert "**Run incomplete.**" in render_markdown(sample_report(complete=False))


def test_judge_model_is_named():
    report = sample_report()
    for r in report.rounds:
        r.judge = JudgeInfo(type="llama-guard", model="meta-llama/Llama-Guard-3-8B")
    text = render_markdown(report)
    assert "Judge: `llama-guard` (meta-llama/Llama-Guard-3-8B)." in text and "heuristic" not in text


def test_unjudged_round_renders_a_dash_not_a_crash():
    report = sample_report()
    report.rounds[1].directASR = None
    report.rounds[1].adversarialASR = Rate.of(0, 0)  # nothing judged
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| 1 "))
    assert row.split("|")[2].strip() == "—" and row.split("|")[3].strip() == "—"


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
    assert sorted(p.name for p in out.iterdir()) == ["asr.png", "report.html", "report.json", "report.md"]


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
