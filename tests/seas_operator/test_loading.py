"""Bad SafetyEvolution files through ``seas validate`` and ``seas run``.

Every problem ends with exit code 2, one ``  - <field.path>: message`` line per
problem on stderr, and never a traceback. ``seas run`` must refuse before it
creates anything. The table of single problems goes through ``cli.main`` in
process (the console script is ``sys.exit(main())``; each process start costs
~0.3 s); ``seas run``, the multi-problem files and the examples go through the
real console script as subprocesses.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT  # noqa: E402
EXAMPLES = ROOT / "examples"
_SCRIPT = Path(sys.executable).with_name("seas")
SEAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "seas_operator.cli"]

VALID = {
    "apiVersion": "seas.dev/v1alpha1",
    "kind": "SafetyEvolution",
    "metadata": {"name": "smollm2-demo"},
    "spec": {
        "rounds": 3,
        "target": {"model": "embedded:smollm2-135m-instruct"},
        "redTeam": {"model": "embedded:smollm2-135m-instruct"},
        "classifier": {"type": "refusal-match"},
        "attack": {"samplesPerSeed": 2, "maxNewTokens": 64, "temperature": 1.0},
        "training": {"beta": 0.1, "target": {"learningRate": 5.0e-5, "epochs": 1, "lora": {"r": 8, "alpha": 16}}},
        "gates": {"maxTargetASR": 0.2},
    },
}


def seas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SEAS, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def write_spec(tmp_path: Path, doc, name: str = "evolution.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def with_spec(**changes) -> dict:
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


def problems(stderr: str) -> list[str]:
    return [line.strip()[2:] for line in stderr.splitlines() if line.startswith("  - ")]


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> list[str]:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output, output
    lines = problems(proc.stderr)
    assert lines, proc.stderr
    for needle in needles:
        assert any(needle in line for line in lines), (needle, proc.stderr)
    return lines


def bad_rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        '{"id": "s1", "prompt": "first", "category": "fraud", "style": "role_play"}\n'
        '{"id": "s2", "prompt": "second", "category": "fraud", "style": "role_play"\n',
        encoding="utf-8",
    )
    return path


CASES = {
    "unknown field": (lambda tmp: with_spec(atack={"samplesPerSeed": 2}), ["spec.atack: unknown field"]),
    "wrong type": (lambda tmp: with_spec(rounds="three"), ["spec.rounds:"]),
    "rounds zero": (lambda tmp: with_spec(rounds=0), ["spec.rounds:"]),
    "rounds missing": (lambda tmp: with_spec(rounds=None), ["spec.rounds: required field is missing"]),
    "missing target": (lambda tmp: with_spec(target=None), ["spec.target: required field is missing"]),
    "empty target model": (lambda tmp: with_spec(target={"model": ""}), ["spec.target.model:"]),
    "unknown embedded model": (lambda tmp: with_spec(redTeam={"model": "embedded:gpt-17"}), ["spec.redTeam.model:", "embedded:gpt-17"]),
    "unknown engine": (lambda tmp: with_spec(target={"model": "x/y", "engine": "tpu"}), ["spec.target.engine:"]),
    "missing data file": (lambda tmp: with_spec(data={"seeds": "/nonexistent.jsonl"}), ["spec.data.seeds:", "/nonexistent.jsonl"]),
    "data file is a directory": (lambda tmp: with_spec(data={"heldout": str(tmp)}), ["spec.data.heldout:"]),
    "data file with a bad row": (lambda tmp: with_spec(data={"seeds": str(bad_rows_file(tmp))}), ["spec.data.seeds:", "seeds.jsonl:2"]),
    "bad cron schedule": (lambda tmp: with_spec(schedule="61 * * * *"), ["spec.schedule:"]),
    "not a cron schedule": (lambda tmp: with_spec(schedule="every day"), ["spec.schedule:"]),
    "bad gate": (lambda tmp: with_spec(gates={"maxTargetASR": 1.5}), ["spec.gates.maxTargetASR:"]),
    "invalid metadata.name": (lambda tmp: {**copy.deepcopy(VALID), "metadata": {"name": "Bad_Name"}}, ["metadata.name:"]),
    "wrong apiVersion": (lambda tmp: {**copy.deepcopy(VALID), "apiVersion": "seas.dev/v2"}, ["apiVersion:"]),
    "yaml syntax error": (lambda tmp: "apiVersion: seas.dev/v1alpha1\nspec: [rounds: 3\n", ["(YAML) line"]),
    "empty file": (lambda tmp: "", ["(top level)"]),
    "not a mapping": (lambda tmp: "- just\n- a list\n", ["(top level)"]),
}


RUN_CASES = ["unknown field", "rounds zero", "missing data file", "yaml syntax error", "data file with a bad row"]


def _several_problems(tmp: Path) -> dict:
    doc = with_spec(rounds=0, atack={"samplesPerSeed": 2}, target={"model": "embedded:nope"})
    doc["metadata"]["name"] = "UPPER"
    return doc


def _bad_knowledge(tmp: Path) -> dict:
    qa = tmp / "qa.jsonl"
    qa.write_text(
        '{"question": "2+2?", "choices": ["3", "4"], "answer": 1}\n\n'
        '{"question": "Capital of France?", "choices": ["Paris", "Lyon"], "answer": 5}\n',
        encoding="utf-8",
    )
    return with_spec(data={"knowledge": str(qa)})


def _relative_data(tmp: Path) -> dict:
    (tmp / "sets").mkdir()
    (tmp / "sets" / "seeds.jsonl").write_text('{"prompt": "p", "category": "fraud", "style": "role_play"}\n', encoding="utf-8")
    (tmp / "elsewhere").mkdir()
    return with_spec(data={"seeds": "sets/seeds.jsonl"})


OTHER = {
    "several problems": _several_problems,
    "bad data file and bad field": lambda tmp: with_spec(rounds=0, data={"seeds": "/nonexistent.jsonl"}),
    "several bad data files": lambda tmp: with_spec(data={"seeds": "/nonexistent.jsonl", "knowledge": "/also-missing.jsonl"}),
    "bad knowledge row": _bad_knowledge,
    "relative data path": _relative_data,
    "valid": lambda tmp: copy.deepcopy(VALID),
}


SCRIPT_CASES = ["several problems", "bad data file and bad field", "relative data path", "valid"]


def validate_in_process(tmp_path: Path, doc, capsys) -> tuple[subprocess.CompletedProcess, Path]:
    """``seas validate`` through ``seas_operator.cli.main``, the function the console script calls.

    An exception escaping ``main`` fails the test, just as a traceback would.
    """
    from seas_operator.cli import main

    path = write_spec(tmp_path, doc)
    capsys.readouterr()
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["seas", "validate", str(path)], code, captured.out, captured.err), path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Commands run through the real console script, concurrently (each costs ~0.3 s of CPU)."""
    jobs = {}
    console = {c: OTHER[c] for c in SCRIPT_CASES}
    for group, makers in (("validate", console), ("run", {c: CASES[c][0] for c in RUN_CASES})):
        for case, make in makers.items():
            make = make[0] if isinstance(make, tuple) else make
            tmp = tmp_path_factory.mktemp(f"{group}-{case.replace(' ', '-')}")
            path = write_spec(tmp, make(tmp))
            args = ["validate", str(path)] if group == "validate" else ["run", str(path), "--output", str(tmp / "out")]
            cwd = tmp / "elsewhere" if (tmp / "elsewhere").is_dir() else None
            jobs[(group, case)] = (args, cwd, path, tmp)
    missing = tmp_path_factory.mktemp("missing") / "nope.yaml"
    jobs[("validate", "missing file")] = (["validate", str(missing)], None, missing, missing.parent)
    for name in ("evolution.yaml", "gpu-cluster.yaml"):
        jobs[("example", name)] = (["validate", str(EXAMPLES / name)], None, EXAMPLES / name, None)
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2))) as pool:
        futures = {key: pool.submit(seas, *args, cwd=cwd) for key, (args, cwd, _, _) in jobs.items()}
        return {key: (future.result(), jobs[key][2], jobs[key][3]) for key, future in futures.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_refuses_bad_input_naming_the_field(tmp_path, capsys, case):
    make, needles = CASES[case]
    proc, path = validate_in_process(tmp_path, make(tmp_path), capsys)
    assert_refused(proc, *needles)
    assert str(path) in proc.stderr  # which file is wrong


@pytest.mark.parametrize("case", RUN_CASES)
def test_run_refuses_bad_input_before_creating_anything(runs, case):
    proc, _, tmp = runs[("run", case)]
    assert_refused(proc, *CASES[case][1])
    assert not (tmp / "out").exists()


def test_missing_spec_file_is_exit_2(runs):
    proc, _, _ = runs[("validate", "missing file")]
    assert_refused(proc, "cannot read file")


def test_several_problems_one_line_each(runs):
    proc, _, _ = runs[("validate", "several problems")]
    lines = assert_refused(proc, "spec.rounds:", "spec.atack: unknown field", "spec.target.model:", "metadata.name:")
    assert len(lines) == 4, proc.stderr


def test_bad_data_file_is_reported_alongside_other_problems(runs):
    # One message per problem: a missing data file must not be hidden by a
    # wrong field elsewhere in the same file.
    proc, _, _ = runs[("validate", "bad data file and bad field")]
    lines = assert_refused(proc, "spec.rounds:", "spec.data.seeds:")
    assert len(lines) == 2, proc.stderr


def test_several_bad_data_files_one_line_each(tmp_path, capsys):
    proc, _ = validate_in_process(tmp_path, OTHER["several bad data files"](tmp_path), capsys)
    lines = assert_refused(proc, "spec.data.seeds:", "spec.data.knowledge:")
    assert len(lines) == 2


def test_bad_knowledge_row_names_file_and_line(tmp_path, capsys):
    proc, _ = validate_in_process(tmp_path, OTHER["bad knowledge row"](tmp_path), capsys)
    assert_refused(proc, "spec.data.knowledge:", f"{tmp_path / 'qa.jsonl'}:3", "answer")


def test_relative_data_paths_resolve_against_the_spec_file(runs):
    proc, _, _ = runs[("validate", "relative data path")]
    assert proc.returncode == 0, proc.stderr


def test_valid_file_validates(runs):
    proc, _, _ = runs[("validate", "valid")]
    assert proc.returncode == 0, proc.stderr
    assert "smollm2-demo" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["evolution.yaml", "gpu-cluster.yaml"])
def test_shipped_examples_validate(runs, name):
    # gpu-cluster.yaml is a kubectl bundle (Secret, PVC, SafetyEvolution); the
    # SafetyEvolution in it is the very YAML the cluster gets and must validate.
    proc, _, _ = runs[("example", name)]
    assert proc.returncode == 0, proc.stdout + proc.stderr
