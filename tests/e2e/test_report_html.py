"""``report.html`` rendered by a real browser: headless Chromium (Debian's ``chromium``) loads it, dumps its DOM, and screenshots it.

The run folder is synthetic (no model): records files in the layout the stages
write, and a report whose figures are counted from them. The test installs
Chromium through ``.ci/install-chromium.sh`` when it is missing and fails (never
skips) when that does not work. About 10 s (two Chromium starts; 20 s on a busy machine).

Regenerate the README's picture, deterministically from the same synthetic run:

    .venv/bin/python -m tests.e2e.test_report_html docs/img/report.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from seas_operator.report import Report
from seas_operator.report_files import write_report
from seas_operator.status import GateResult, PairCounts, RoundStatus
from seas_runtime.artifacts import write_jsonl
from seas_runtime.contract import JudgeInfo, Stage, StageKey
from seas_runtime.layout import stage_dir
from seas_runtime.stats import Rate, paired_change

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = ("cybercrime", "drugs", "fraud", "hate", "privacy", "self_harm", "violence", "weapons")
STYLES = ("adversarial_prefix", "goal_hijacking", "role_play", "session_completion", "token_manipulation")
WIDTH, HEIGHT = 1280, 3000


def _unsafe(round_: int, c: int, s: int, item: int) -> bool:
    """A deterministic pattern: role play and token tricks hold out longest, every round is safer than the one before."""
    weight = (3 + 2 * (STYLES[s] in ("role_play", "token_manipulation")) + (c % 3)) / 8
    return ((item * 7 + c * 3 + s * 5) % 10) / 10 < weight * (1 - 0.35 * round_)


def _evaluation_rows(round_: int) -> list[dict]:
    rows = []
    for c, category in enumerate(CATEGORIES):
        for s, style in enumerate(STYLES):
            for item in range(4):
                verdict = "unsafe" if _unsafe(round_, c, s, item) else "safe"
                rows.append({"set": "adversarial", "id": f"adv-{c}-{s}-{item}", "category": category, "style": style,
                             "prompt": f"[synthetic held-out {style} prompt #{item} about {category}]",
                             "answer": f"[synthetic {'compliant' if verdict == 'unsafe' else 'refusing'} answer of round {round_}]",
                             "verdict": verdict, "categories": [], "reason": "no refusal phrase" if verdict == "unsafe" else "refusal phrase"})
        for item in range(8):
            verdict = "unsafe" if (item + c) % 8 < 4 - round_ else "safe"
            rows.append({"set": "direct", "id": f"dir-{c}-{item}", "category": category, "style": "direct",
                         "prompt": f"[synthetic direct request #{item} about {category}] <script>alert(1)</script>",
                         "answer": "[synthetic answer] Sure, here is <b>not bold</b>", "verdict": verdict, "categories": [], "reason": ""})
    return rows


def _attack_rows(round_: int) -> list[dict]:
    return [{"id": f"r{round_}-seed-{c}-p{k}", "seed_id": f"seed-{c}", "category": category, "style": STYLES[k % len(STYLES)],
             "seed": "[seed]", "prompt": f"[synthetic red-team prompt {k} on {category}]", "offGoal": "offGoal" if k == 3 else None,
             "responses": [{"text": f"[synthetic answer {j}]", "verdict": "unsafe" if (j + k + c) % 3 == 0 else "safe",
                            "categories": [], "reason": ""} for j in range(2)]}
            for c, category in enumerate(CATEGORIES) for k in range(4)]


def _asr(rows: list[dict], keep=lambda row: True) -> Rate:
    judged = [row for row in rows if keep(row) and row["verdict"] in ("safe", "unsafe")]
    return Rate.of(sum(row["verdict"] == "unsafe" for row in judged), len(judged))


def synthetic_run(out: Path, rounds: int = 3) -> Report:
    """Records files for ``rounds`` rounds under ``out`` and the report counted from them (round 1 fails its gate, round 2 passes)."""
    entries: list[RoundStatus] = []
    previous: dict[str, bool] = {}
    for r in range(rounds):
        rows = _evaluation_rows(r)
        write_jsonl(Path(stage_dir(str(out), StageKey(r, Stage.EVALUATE))) / "records.jsonl", rows)
        if r:
            write_jsonl(Path(stage_dir(str(out), StageKey(r, Stage.ATTACK))) / "records.jsonl", _attack_rows(r))
        adversarial = [row for row in rows if row["set"] == "adversarial"]
        direct = [row for row in rows if row["set"] == "direct"]
        unsafe = {row["id"]: row["verdict"] == "unsafe" for row in adversarial + direct}
        entry = RoundStatus(
            round=r, directASR=_asr(direct), adversarialASR=_asr(adversarial),
            redteamASR=Rate.of(14 - 3 * r, 32) if r else None, contrastRefusalRate=Rate.of(3 + 2 * r, 40), benignRefusalRate=Rate.of(2 + 3 * r, 40),
            judgeErrorRate=Rate.of(0, 224), qaAccuracy=Rate.of(71 - r, 120), qaAccuracyNorm=Rate.of(69 - r, 120),
            qaGenerationAccuracy=Rate.of(52 - 2 * r, 120), qaPerplexity=4.2 + 0.1 * r, qaEntropy=1.1, qaAnswerProbability=0.41,
            qaGenerationPerplexity=3.1, qaGenerationEntropy=0.9, qaGenerationTopProbability=0.7,
            byCategory={c: _asr(adversarial, lambda row, c=c: row["category"] == c) for c in CATEGORIES},
            byStyle={s: _asr(adversarial, lambda row, s=s: row["style"] == s) for s in STYLES},
            regression=paired_change([previous[i] for i in sorted(unsafe)], [unsafe[i] for i in sorted(unsafe)]) if previous else None,
            accuracyChange=paired_change([False] * 100 + [True] * 20, [False] * (99 - r) + [True] * (21 + r)) if r else None,
            pairs=PairCounts(target=20 * r, redteam=7 * r), seconds=60.0 + r,
            judge=JudgeInfo(type="refusal-match", heuristic=True), targetModel=f"runs/synthetic-demo/r{r}/train-target/model" if r else None,
            gate=None if r == 0 else GateResult(passed=r >= 2, failures=[] if r >= 2 else ["adversarial ASR 60/160: upper bound 0.452 > 0.300"]),
        )
        entries.append(entry)
        previous = unsafe
    promoted = next((e.targetModel for e in reversed(entries) if e.gate and e.gate.passed), "org/target")
    return Report(evolution="synthetic-demo", complete=True, promotedModel=promoted or "org/target", rounds=entries)


# --- the browser -----------------------------------------------------------------------


def chromium() -> str:
    """The Chromium binary, installed by .ci/install-chromium.sh when missing; fails the test when that does not work."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        done = subprocess.run(["bash", str(REPO / ".ci" / "install-chromium.sh")], capture_output=True, text=True, timeout=900)
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        assert found, f"chromium is needed and .ci/install-chromium.sh could not install it:\n{done.stdout}\n{done.stderr}"
    return found


def _browser(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    # A fresh profile per call (parallel runs never share one) and a proxy that goes nowhere: a page that tried to
    # fetch anything would show it as missing in the screenshot instead of quietly loading it.
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                           "--no-first-run", "--disable-extensions", *args, page.as_uri()], capture_output=True, text=True, timeout=120)


def dump_dom(page: Path, profile: Path) -> str:
    done = _browser(page, profile, "--dump-dom")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, png: Path, profile: Path) -> Path:
    done = _browser(page, profile, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}")
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    return png


class Elements(HTMLParser):
    """Every start tag of a document with its attributes, and its visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(attrs[k] in a.get(k.rstrip("_"), "").split() for k in attrs)]


def test_chromium_renders_the_report_with_its_tables_plots_and_heat_map(tmp_path):
    out = tmp_path / "run"
    report = synthetic_run(out)
    write_report(report, out)
    page = out / "report.html"
    source = page.read_text(encoding="utf-8")
    assert not any(marker in source for marker in ("<script", "<link", "src=", "url(", "@import", "http://", "https://")), "the page must load nothing"

    dom = Elements(dump_dom(page, tmp_path / "profile"))
    assert len(dom.find("table", class_="figures")) == 2 and dom.find("table", class_="gates")
    assert len([row for row in dom.find("tr") if "data-round" in row]) == 3 * 3  # figures, gates, knowledge: three rounds each
    assert [cell["data-k"] + "/" + cell["data-n"] for cell in dom.find("td", class_="rate")][:2] == [
        f"{report.rounds[0].directASR.k}/64", f"{report.rounds[0].adversarialASR.k}/160"]
    plots = dom.find("svg", class_="plot")
    assert [p["id"] for p in plots] == ["asr-plot", "side-plot"]
    assert len(dom.find("circle", class_="point")) >= 3 * 3 and len(dom.find("line", class_="interval")) >= 9  # a point and a bar per round and rate
    assert [m["id"] for m in dom.find("svg", class_="heatmap")] == ["heatmap-r0", "heatmap-r2"]
    assert len(dom.find("g", class_="cell")) == 2 * (len(CATEGORIES) + 1) * (len(STYLES) + 1)  # the cross table and its margins, twice
    text = " ".join(dom.text)
    assert "Content warning" in text and "Last round (2): pass" in text and "adversarial ASR 60/160: upper bound 0.452 > 0.300" in text
    details = dom.find("details", class_="category")
    assert {d["data-category"] for d in details} <= set(CATEGORIES) and details and not any("open" in d for d in details)
    assert not dom.find("script") and not dom.find("b")  # model output is text, never markup
    assert "<script>alert(1)</script>" in text

    png = screenshot(page, tmp_path / "report.png", tmp_path / "profile")
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
        top_half = pixels.crop((0, 0, WIDTH, HEIGHT // 2)).getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "a blank or nearly blank screenshot"
    assert max(count for count, _ in top_half) < 0.9 * WIDTH * HEIGHT // 2, "the top of the page is one colour: nothing rendered"
    reds = sum(count for count, (r, g, b) in colours if r > 150 and g < 90 and b < 90)
    assert reds > 2000, "the heat map's and plots' reds are missing from the screenshot"


def regenerate(target: Path) -> Path:
    """Write the README's picture of the synthetic report to ``target`` (quantized to 256 colours: a small file)."""
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synthetic-demo"  # a fixed folder name: the page shows model paths under it
        report = synthetic_run(out)
        write_report(report, out)
        png = screenshot(out / "report.html", Path(tmp) / "report.png", Path(tmp) / "profile")
        with Image.open(png) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)
    return target


if __name__ == "__main__":
    print(regenerate(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "img" / "report.png")))
