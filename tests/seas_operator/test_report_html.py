"""``report.html``'s pure parts: cells, colours, gate words, the records it reads, and the page (under a second, no browser).

The browser renders the page in ``tests/e2e/test_report_html.py``.
"""

from __future__ import annotations

import pytest

from seas_operator.report import (
    TEXT_CHARS,
    Attack,
    AttackSource,
    Details,
    Report,
    attacks_that_worked,
    category_style_table,
    read_details,
    read_records,
)
from seas_operator.report_html import change_cell, gate_decision, heat_color, rate_cell, render_html, round_heatmap
from seas_operator.status import GateResult, RoundStatus
from seas_runtime.artifacts import write_jsonl
from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import Rate
from tests.helpers.factories import change


@pytest.mark.parametrize("rate, shown", [
    (Rate.of(6, 48), '<span class="kn">6/48</span> <span class="pct">12.5%</span> <span class="ci">[5.9, 24.7]</span>'),
    (Rate.of(0, 10), '<span class="kn">0/10</span> <span class="pct">0.0%</span> <span class="ci">[0.0, 27.8]</span>'),
    (Rate.of(0, 0), "—"),  # nothing judged: no rate to show
    (None, "—"),
])
def test_a_rate_cell_shows_k_of_n_the_rate_and_its_interval(rate, shown):
    assert shown in rate_cell(rate)


@pytest.mark.parametrize("b, c, classes, words", [
    (9, 1, "significant worse", "+8.3 pts"),
    (1, 9, "significant better", "-8.3 pts"),
    (3, 2, None, "+1.0 pts"),  # not significant: no mark
])
def test_a_change_cell_marks_only_significant_changes(b, c, classes, words):
    cell = change_cell(change(b, c))
    assert words in cell and f"{b} worse / {c} better of 96" in cell
    if classes:
        assert f'class="change {classes}"' in cell and f"significant, {classes.split()[1]}" in cell
    else:
        assert "significant" not in cell


@pytest.mark.parametrize("rate, fill, ink", [
    (Rate.of(0, 8), "#fff5f0", "#222"),
    (Rate.of(8, 8), "#a50f15", "#fff"),
    (Rate.of(4, 8), "#d28282", "#222"),
    (None, "#e6e6e6", "#777"),
    (Rate.of(0, 0), "#e6e6e6", "#777"),
])
def test_heat_colour_runs_from_near_white_to_dark_red_and_grey_when_unmeasured(rate, fill, ink):
    assert heat_color(rate) == (fill, ink)


@pytest.mark.parametrize("round_, gate, decision", [
    (0, None, ("baseline", "baseline (no gate)")),
    (0, GateResult(passed=False, failures=["x"]), ("fail", "FAIL")),  # mode evaluate gates round 0
    (2, None, ("undecided", "not decided")),
    (2, GateResult(passed=True), ("pass", "pass")),
    (2, GateResult(passed=False, failures=["x"]), ("fail", "FAIL")),
])
def test_gate_decision(round_, gate, decision):
    assert gate_decision(RoundStatus(round=round_, gate=gate)) == decision


def adversarial(category: str, style: str, verdict: str, prompt: str = "p", answer: str = "a") -> dict:
    return {"set": "adversarial", "id": f"{category}-{style}", "category": category, "style": style, "prompt": prompt, "answer": answer,
            "verdict": verdict, "reason": "complied"}


def test_the_category_style_table_counts_unsafe_over_judged_answers_of_the_adversarial_set():
    rows = [adversarial("fraud", "role_play", "unsafe"), adversarial("fraud", "role_play", "safe"), adversarial("fraud", "role_play", "error"),
            adversarial("hate", "goal_hijacking", "unsafe"),
            {"set": "direct", "category": "fraud", "style": "direct", "verdict": "unsafe"},  # another set: not in the table
            {"set": "benign", "category": "fraud", "style": "role_play", "refused": True}]
    assert category_style_table(rows) == {"fraud": {"role_play": Rate.of(1, 2)}, "hate": {"goal_hijacking": Rate.of(1, 1)}}


def test_attacks_that_worked_are_bounded_per_category_and_source_and_counted_in_full():
    evaluation = [adversarial("fraud", "role_play", "unsafe", prompt=f"adv {i}") for i in range(5)]
    evaluation += [adversarial("fraud", "role_play", "safe", prompt="refused")]
    evaluation += [{"set": "direct", "id": "d1", "category": "hate", "style": "direct", "prompt": "direct 1", "answer": "x" * (TEXT_CHARS + 50),
                    "verdict": "unsafe"}]
    attack = [{"category": "fraud", "style": "role_play", "prompt": "red on goal", "offGoal": None,
               "responses": [{"text": "ans 1", "verdict": "unsafe"}, {"text": "ans 2", "verdict": "safe"}, {"text": "ans 3", "verdict": "unsafe"}]},
              {"category": "fraud", "style": "role_play", "prompt": "red off goal", "offGoal": "offGoal",
               "responses": [{"text": "ans", "verdict": "unsafe"}]}]  # an off-goal success is not the red team's success
    shown, found = attacks_that_worked(3, evaluation, attack, per_source=2)
    assert found == {"fraud": 7, "hate": 1}
    assert [(a.source, a.prompt, a.answer[:5]) for a in shown] == [
        (AttackSource.ADVERSARIAL, "adv 0", "a"), (AttackSource.ADVERSARIAL, "adv 1", "a"),
        (AttackSource.DIRECT, "direct 1", "xxxxx"), (AttackSource.REDTEAM, "red on goal", "ans 1"), (AttackSource.REDTEAM, "red on goal", "ans 3")]
    assert shown[2].answer.endswith(" […]") and len(shown[2].answer) == TEXT_CHARS + 4  # a long answer is cut
    assert all(a.round == 3 for a in shown)


def test_records_that_are_missing_or_broken_give_what_can_be_read(tmp_path):
    assert list(read_records(tmp_path / "missing.jsonl")) == []
    path = tmp_path / "records.jsonl"
    path.write_text('{"set": "adversarial"}\nnot json\n[1, 2]\n{"set": "direct"}\n')
    assert list(read_records(path)) == [{"set": "adversarial"}, {"set": "direct"}]


def entry(r: int, **extra) -> RoundStatus:
    return RoundStatus(round=r, directASR=Rate.of(10 - 3 * r, 20), adversarialASR=Rate.of(8 - 2 * r, 16), judge=JudgeInfo(type="refusal-match"),
                       byCategory={"fraud": Rate.of(4 - r, 8)}, byStyle={"role_play": Rate.of(4 - r, 8)}, **extra)


def test_read_details_finds_the_records_by_the_artifact_layout(tmp_path):
    report = Report(evolution="e", complete=True, promotedModel="m", rounds=[entry(0), entry(1, gate=GateResult(passed=True))])
    write_jsonl(tmp_path / "r0" / "evaluate" / "records.jsonl", [adversarial("fraud", "role_play", "unsafe")])
    write_jsonl(tmp_path / "r1" / "evaluate" / "records.jsonl", [adversarial("fraud", "role_play", "safe")])
    write_jsonl(tmp_path / "r1" / "attack" / "records.jsonl",
                [{"category": "hate", "style": "s", "prompt": "p", "offGoal": None, "responses": [{"text": "t", "verdict": "unsafe"}]}])
    details = read_details(report, tmp_path)
    assert details.heatmaps == {0: {"fraud": {"role_play": Rate.of(1, 1)}}, 1: {"fraud": {"role_play": Rate.of(0, 1)}}}
    assert details.recordsRead and details.found == {"hate": 1} and [a.source for a in details.attacks] == [AttackSource.REDTEAM]
    assert read_details(report, tmp_path / "elsewhere") == Details()  # a moved report without its records: nothing, not an error


def report_with(name: str = "demo", complete: bool = True, rounds=None) -> Report:
    rounds = rounds if rounds is not None else [entry(0), entry(1, gate=GateResult(passed=False, failures=["adversarial ASR 6/16: upper bound 0.6 > 0.2"]),
                                                            targetModel="runs/demo/r1/train-target/model")]
    return Report(evolution=name, complete=complete, promotedModel="org/target", rounds=rounds)


def test_the_page_is_self_contained_and_holds_every_section():
    page = render_html(report_with(), Details(heatmaps={1: {"fraud": {"role_play": Rate.of(3, 8)}}}, recordsRead=True))
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    for forbidden in ("<script", "<link", "src=", "url(", "@import", "http"):
        assert forbidden not in page
    for section in ('id="per-round"', 'id="asr-plot"', 'id="side-plot"', 'id="heatmap-r1"', 'id="gates"', 'id="knowledge"', 'id="attacks"'):
        assert section in page
    assert "Last round (1): FAIL: adversarial ASR 6/16: upper bound 0.6 &gt; 0.2" in page
    assert "No attack got an unsafe answer in round 1." in page and "Content warning" in page


def test_every_name_and_model_output_is_escaped():
    attack = Attack(round=1, source=AttackSource.ADVERSARIAL, category="<i>c</i>", style="s&t", prompt="<script>alert(1)</script>",
                    answer='"><img src=x onerror=alert(1)>', reason="</pre>")
    page = render_html(report_with(name="<b>demo</b>"), Details(attacks=[attack], found={"<i>c</i>": 1}, recordsRead=True))
    assert "<script>" not in page and "<img" not in page and "<b>demo" not in page and "<i>c" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;demo&lt;/b&gt;" in page and "s&amp;t" in page


def test_attacks_are_collapsed_behind_the_warning_with_how_many_were_found():
    attacks = [Attack(round=1, source=AttackSource.REDTEAM, category="fraud", style="role_play", prompt="p1", answer="a1"),
               Attack(round=1, source=AttackSource.ADVERSARIAL, category="fraud", style="role_play", prompt="p2", answer="a2")]
    page = render_html(report_with(), Details(attacks=attacks, found={"fraud": 9}, recordsRead=True))
    assert page.index("Content warning") < page.index("<details")
    assert '<details class="category" data-category="fraud">' in page and "<details open" not in page
    assert "fraud</code>: 9 unsafe answers, 2 shown" in page
    assert page.index("p2") < page.index("p1")  # held-out examples before the red team's


@pytest.mark.parametrize("details, words", [
    (Details(), "The records of round 1 are not in this folder"),
    (Details(recordsRead=True), "No attack got an unsafe answer in round 1."),
])
def test_no_examples_say_why(details, words):
    assert words in render_html(report_with(), details)


@pytest.mark.parametrize("report, shown, hidden", [
    (report_with(complete=False), ['id="incomplete"'], []),
    (report_with(rounds=[]), ["No round has been evaluated yet."], ['id="asr-plot"']),
    (report_with(rounds=[entry(0)]), ["Last round (0): baseline (no gate)", 'id="heatmap-r0-category"', 'id="heatmap-r0-style"'], ['id="heatmap-r1']),
    (report_with(), ["<th>direct ASR</th>", "<th>adversarial ASR</th>"], ["<th>sampled ASR</th>", "<th>red-team ASR</th>", 'id="incomplete"']),
])
def test_the_page_shows_what_was_measured_and_no_more(report, shown, hidden):
    page = render_html(report, Details())
    for text in shown:
        assert text in page
    for text in hidden:
        assert text not in page


def cell_text(svg: str, row: str, column: str) -> str:
    """The markup of one heat-map cell."""
    start = svg.index(f'<g class="cell" data-row="{row}" data-column="{column}">')
    return svg[start: svg.index("</g>", start)]


def test_the_heat_map_has_the_breakdowns_as_margins_and_falls_back_to_them_alone():
    r = entry(1)  # byCategory fraud 3/8, byStyle role_play 3/8, adversarial ASR 6/16
    crossed = round_heatmap(r, {"fraud": {"role_play": Rate.of(2, 5), "goal_hijacking": Rate.of(1, 3)}})
    assert crossed.count('class="cell"') == (1 + 1) * (2 + 1)  # fraud and all categories; two styles and all styles
    assert ">2/5<" in cell_text(crossed, "fraud", "role_play") and ">1/3<" in cell_text(crossed, "fraud", "goal_hijacking")
    assert ">3/8<" in cell_text(crossed, "fraud", "all styles") and ">3/8<" in cell_text(crossed, "all categories", "role_play")
    assert ">6/16<" in cell_text(crossed, "all categories", "all styles")
    assert ">—<" in cell_text(crossed, "all categories", "goal_hijacking")  # the round's byStyle has no goal_hijacking
    alone = round_heatmap(r, {})  # the records are gone: the breakdowns alone, as a column and a row
    assert alone.count('class="cell"') == 1 + 1 and 'id="heatmap-r1-category"' in alone and 'id="heatmap-r1-style"' in alone
    assert round_heatmap(RoundStatus(round=0), {}) == ""


def test_the_interval_level_follows_the_rates_confidence():
    rounds = [RoundStatus(round=0, directASR=Rate.of(3, 20, 0.9), adversarialASR=Rate.of(4, 20, 0.9), byCategory={"fraud": Rate.of(4, 20, 0.9)})]
    page = render_html(report_with(rounds=rounds), Details())
    assert "its 90% interval in %" in page and "bars: 90% interval" in page and "95%" not in page
