"""The ``seas`` command's report-side options: ``--version``, ``seas run --fail-on-gate`` and ``seas compare``.

No model: ``seas run`` drives a fake ``seas-runtime`` (written below) that answers
every stage at once, and ``seas compare`` reads report.json files written here.
About 15 s on an idle machine (six fake stages, a few ``python -m seas_operator.cli`` starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seas_operator import cli, local_executor
from seas_operator.report import Report
from seas_operator.status import GateResult, RoundStatus
from seas_runtime.contract import JudgeInfo
from seas_runtime.stats import Rate

ROOT = Path(__file__).resolve().parents[2]  # the fake runtime imports tests.helpers from here

FAKE_RUNTIME = '''
"""A stand-in for seas-runtime: every stage succeeds at once; the evaluation finds 12 of 48 answers unsafe, one of them in its records."""
import sys
from pathlib import Path
sys.path.insert(0, %r)
from tests.helpers.fake_stages import JUDGE, quick_result
from seas_runtime.artifacts import write_jsonl, write_text
from seas_runtime.contract import EvaluateResult, KnowledgeFigures, dump_result, parse_stage_config
from seas_runtime.stats import Rate

stage, cfg = sys.argv[1], parse_stage_config(Path(sys.argv[3]).read_text())
out = Path(cfg.outputDir)
result = quick_result(stage, cfg, out)
if result is None:
    records = write_jsonl(out / "records.jsonl", [{"set": "adversarial", "id": "a1", "category": "fraud", "style": "role_play",
                                                   "prompt": "FAKE-PROMPT", "answer": "FAKE-ANSWER", "verdict": "unsafe"}])
    result = EvaluateResult(round=cfg.round, directASR=Rate.of(12, 48), adversarialASR=Rate.of(12, 48),
                            contrastRefusal=Rate.of(4, 40), benignRefusal=Rate.of(4, 40), judgeErrors=Rate.of(0, 96),
                            byCategory={"fraud": Rate.of(1, 1)}, byStyle={"role_play": Rate.of(1, 1)},
                            knowledge=KnowledgeFigures(accuracy=Rate.of(72, 120), perplexity=5.0, entropy=1.0, probability=0.4),
                            judge=JUDGE, records=str(records))
write_text(out / "result.json", dump_result(result))
''' % str(ROOT)


def seas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seas_operator.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ})


def test_version_prints_the_package_version(tmp_path):
    from importlib import metadata

    done = seas("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"seas {metadata.version('seas-operator')}"


def gated(passed) -> Report:
    rounds = [RoundStatus(round=0)] + ([RoundStatus(round=1, gate=None if passed is None else GateResult(passed=passed))] if passed != "none" else [])
    return Report(evolution="e", complete=True, promotedModel="m", rounds=rounds)


@pytest.mark.parametrize("stage_code, report, fail_on_gate, code", [
    (0, gated(False), True, cli.EXIT_GATE),
    (0, gated(False), False, 0),  # without the flag a failed gate is only reported
    (0, gated(True), True, 0),
    (0, gated("none"), True, 0),  # only a baseline: nothing was gated
    (cli.EXIT_FAILED, gated(False), True, cli.EXIT_FAILED),  # a failed stage says more than a gate
    (0, Report(evolution="e", complete=False, promotedModel="m"), True, 0),
])
def test_run_exit_code(stage_code, report, fail_on_gate, code):
    assert cli.run_exit_code(stage_code, report, fail_on_gate) == code


def test_exit_codes_are_distinct():
    assert len({0, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_GATE, 3, 130}) == 6  # 3: seas-runtime's EXIT_INPUT


@pytest.fixture()
def fake_run(tmp_path, monkeypatch):
    """``run(gates, *flags)``: ``seas run`` (in this process) of a one-round evolution on the fake runtime; returns (code, output folder).

    The first call runs six fake stages (the slow part, ~1 s each on an idle machine); later ones resume with every stage done.
    """
    runtime = tmp_path / "fake_runtime.py"
    runtime.write_text(FAKE_RUNTIME)
    real = local_executor.run_local
    monkeypatch.setattr(local_executor, "run_local", lambda *args, **kwargs: real(*args, runtime=[sys.executable, str(runtime)], **kwargs))

    def run(gates: dict, *flags: str) -> tuple[int, Path]:
        # One folder: gates are not in any stage's config, so a second run only re-decides them (no stage runs again).
        file, out = tmp_path / "gated.yaml", tmp_path / "gated"
        file.write_text(yaml.safe_dump({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "gated"},
                                        "spec": {"rounds": 1, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"}, "gates": gates}}))
        return cli.main(["run", str(file), "--output", str(out), "--quiet", *flags]), out

    return run


def test_fail_on_gate_exits_4_when_the_last_round_fails_and_0_otherwise(fake_run, capsys):
    code, out = fake_run({"maxTargetASR": 0.1}, "--fail-on-gate")  # 12/48 has an upper bound far above 10%
    assert code == cli.EXIT_GATE == 4
    err = capsys.readouterr().err
    assert "round 1 failed its gates (--fail-on-gate): exit code 4" in err and "report.html" in err
    page = (out / "report.html").read_text()
    assert "Last round (1): FAIL" in page and "FAKE-ANSWER" in page
    assert fake_run({"maxTargetASR": 0.1})[0] == 0  # the same failure without the flag
    assert "failed its gates" not in capsys.readouterr().err
    assert fake_run({"maxTargetASR": 0.9}, "--fail-on-gate")[0] == 0  # a gate that holds
    assert "Last round (1): pass" in (out / "report.html").read_text()


def write_run(folder: Path, unsafe: int) -> Path:
    folder.mkdir(parents=True)
    rounds = [RoundStatus(round=1, directASR=Rate.of(unsafe, 64), adversarialASR=Rate.of(unsafe, 64), judge=JudgeInfo(type="refusal-match"),
                          gate=GateResult(passed=unsafe < 10))]
    (folder / "report.json").write_text(Report(evolution=folder.name, complete=True, promotedModel="m", rounds=rounds).model_dump_json())
    return folder


def test_compare_prints_per_figure_changes_with_marks_and_json(tmp_path):
    write_run(tmp_path / "a", 30)
    write_run(tmp_path / "b", 6)
    done = seas("compare", "a", "b", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("adversarial ASR"))
    assert "30/64" in line and "6/64" in line and "-37.5 pts" in line and line.endswith("* better")
    as_json = seas("compare", "a", "b/report.json", "--json", cwd=tmp_path)
    data = json.loads(as_json.stdout)
    assert data["a"] == "a" and data["gateA"] is False and data["gateB"] is True
    assert next(d for d in data["rates"] if d["figure"] == "direct ASR")["verdict"] == "better"


@pytest.mark.parametrize("setup, args, message", [
    (lambda root: write_run(root / "a", 3), ("a", "missing"), "seas: cannot read missing (No such file or directory)"),
    (lambda root: (write_run(root / "a", 3), (root / "bad").mkdir(), (root / "bad" / "report.json").write_text("{")),
     ("a", "bad"), "seas: bad/report.json is not a SEAS report:"),
    (lambda root: (write_run(root / "a", 3), write_run(root / "b", 3)), ("a", "b", "--round", "7"), "seas: a has no round 7 (it has 1)"),
])
def test_compare_mistakes_get_one_line_and_exit_2(tmp_path, setup, args, message):
    setup(tmp_path)
    done = seas("compare", *args, cwd=tmp_path)
    assert done.returncode == cli.EXIT_USAGE and done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
