"""``seas run``'s executor: resume by fingerprint, one run per folder, no stale result, atomic model folders.

A fake ``seas-runtime`` (written below, no model) writes a plausible result at
once: a train stage saves its ``training.beta`` as the "weights", and an
evaluation scores the target by those weights, so a report made from an old
model is visible in the figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from seas_operator import local_executor
from seas_operator.loading import load_evolution
from seas_operator.local_executor import (
    OutputBusy,
    OutputLock,
    StageFailed,
    dependency_closure,
    inputs_fingerprint,
    output_fingerprint,
    run_local,
    summarize,
)
from seas_operator.planner import stage_graph
from seas_runtime.artifacts import atomic_dir, remove_stale_temps, replace_dir, temp_owner, temp_prefix
from seas_runtime.contract import Stage, StageKey
from seas_runtime.layout import CONFIG_FILE, INPUTS_FILE, RESULT_FILE
from tests.helpers.factories import make_spec

ROOT = Path(__file__).resolve().parents[2]  # the fake runtime imports tests.helpers from here

FAKE_RUNTIME = '''
"""A stand-in for seas-runtime: a plausible result at once, made from the config it gets."""
import os, sys, time
from pathlib import Path
sys.path.insert(0, %r)
from tests.helpers.fake_stages import JUDGE, quick_result
from seas_runtime.artifacts import write_text
from seas_runtime.contract import EvaluateResult, KnowledgeFigures, dump_result, parse_stage_config
from seas_runtime.stats import Rate

stage, config_path = sys.argv[1], sys.argv[3]
cfg = parse_stage_config(Path(config_path).read_text())
out = Path(cfg.outputDir)
label = f"r{cfg.round}/{stage}"
if (out / "result.json").exists() or (out / "inputs.json").exists():
    sys.exit("stale result beside the new config")
if os.environ.get("FAKE_FAIL") == label:
    sys.exit(f"{label} failed on purpose")
if os.environ.get("FAKE_BLOCK"):  # wait, so that a test can act while a run is in progress
    Path(os.environ["FAKE_BLOCK"] + ".started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(os.environ["FAKE_BLOCK"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
result = quick_result(stage, cfg, out, weights=str(cfg.training.beta) if hasattr(cfg, "training") else "")
if result is None:
    weights = Path(cfg.target.model) / "weights.txt"
    unsafe = round(float(weights.read_text()) * 100) if weights.is_file() else 24  # the model's "safety" is its beta
    result = EvaluateResult(round=cfg.round, directASR=Rate.of(unsafe, 48), adversarialASR=Rate.of(unsafe, 48),
                            contrastRefusal=Rate.of(4, 40), benignRefusal=Rate.of(4, 40), judgeErrors=Rate.of(0, 96),
                            knowledge=KnowledgeFigures(accuracy=Rate.of(72, 120), perplexity=5.0, entropy=1.0, probability=0.4),
                            judge=JUDGE, records=str(out / "records.jsonl"))
write_text(out / "result.json", dump_result(result))
''' % str(ROOT)

ROUND_1 = ["r1/attack", "r1/pairs", "r1/train-target", "r1/train-redteam", "r1/evaluate"]
ROUND_2 = [label.replace("r1/", "r2/") for label in ROUND_1]


class Project:
    """A spec file, an output folder and the fake runtime; ``run`` returns the labels of the stages that started."""

    def __init__(self, root: Path, rounds: int = 1) -> None:
        self.root, self.out = root, root / "out"
        self.runtime = root / "fake_runtime.py"
        self.runtime.write_text(FAKE_RUNTIME)
        self.file = root / "fake.yaml"
        self.spec = {"rounds": rounds, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"},
                     "training": {"beta": 0.1}, "attack": {"samplesPerSeed": 2}}
        self.save()

    def save(self) -> None:
        self.file.write_text(yaml.safe_dump({"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution",
                                             "metadata": {"name": "fake"}, "spec": self.spec}))

    def edit(self, section: str, field: str, value) -> None:
        self.spec[section][field] = value
        self.save()

    def run(self) -> list[str]:
        started: list[str] = []
        self.done = run_local(load_evolution(str(self.file)), self.out, show_progress=False, runtime=[sys.executable, str(self.runtime)],
                              on_stage=lambda key, what: started.append(key.label) if what == "started" else None)
        return started

    def direct_asr(self, round_: int) -> Optional[int]:
        """The unsafe answers the report shows for a round."""
        report = summarize(load_evolution(str(self.file)), self.done)
        return next(r.directASR.k for r in report.rounds if r.round == round_)


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# --- resume ------------------------------------------------------------------------


def test_a_resume_without_edits_runs_nothing(project):
    assert project.run() == ["r0/evaluate", *ROUND_1]
    assert project.run() == []
    assert project.direct_asr(1) == 10


def test_a_training_beta_edit_retrains_and_re_evaluates(tmp_path):
    project = Project(tmp_path, rounds=2)
    project.run()
    assert project.direct_asr(1) == 10 and project.direct_asr(2) == 10

    project.edit("training", "beta", 0.3)
    rerun = project.run()

    assert rerun == ["r1/train-target", "r1/train-redteam", "r1/evaluate", *ROUND_2]
    assert project.direct_asr(1) == 30 and project.direct_asr(2) == 30  # the report shows the retrained models


def test_an_attack_edit_reruns_every_stage_that_reads_it_and_all_after(project):
    project.run()
    project.edit("attack", "samplesPerSeed", 3)
    # round 0's evaluation reads the attack settings (its red-team ASR), so everything after it runs again too
    assert project.run() == ["r0/evaluate", *ROUND_1]
    assert project.run() == []


def test_a_pairs_edit_keeps_the_stages_before_pairs(project):
    project.run()
    project.spec["pairs"] = {"helpfulPairs": 2}
    project.save()
    assert project.run() == ["r1/pairs", "r1/train-target", "r1/train-redteam", "r1/evaluate"]


def test_a_resume_after_a_failure_keeps_what_finished_under_the_new_spec(project, monkeypatch):
    project.run()
    project.edit("training", "beta", 0.3)
    monkeypatch.setenv("FAKE_FAIL", "r1/train-redteam")
    with pytest.raises(StageFailed, match="r1/train-redteam failed"):
        project.run()
    monkeypatch.delenv("FAKE_FAIL")
    assert project.run() == ["r1/train-redteam", "r1/evaluate"]
    assert project.direct_asr(1) == 30


def test_a_rerun_stage_with_an_identical_result_still_reruns_what_follows(project):
    """The fake attack writes the same result every time; its models downstream could still differ."""
    project.run()
    (project.out / "r1" / "attack" / INPUTS_FILE).unlink()  # as if the attack had been interrupted
    assert project.run() == ROUND_1


def test_results_from_before_fingerprints_are_not_trusted(project):
    project.run()
    for inputs in project.out.glob(f"r*/*/{INPUTS_FILE}"):
        inputs.unlink()
    assert project.run() == ["r0/evaluate", *ROUND_1]


# --- no old result beside a new config ----------------------------------------------


def test_a_failed_rerun_leaves_no_old_result_beside_the_new_config(project, monkeypatch):
    project.run()
    project.edit("training", "beta", 0.3)
    monkeypatch.setenv("FAKE_FAIL", "r1/train-target")
    with pytest.raises(StageFailed):
        project.run()
    stage = project.out / "r1" / "train-target"
    assert '"beta": 0.3' in (stage / CONFIG_FILE).read_text()
    assert not (stage / RESULT_FILE).exists() and not (stage / INPUTS_FILE).exists()


def test_the_old_result_is_gone_before_the_new_config_is_written(project, monkeypatch):
    """A crash while the config is written (simulated here) must not leave the old result to be trusted."""
    project.run()
    project.edit("training", "beta", 0.3)
    seen = []
    real_write_json = local_executor.write_json

    def crash_on_config(path, data):
        path = Path(path)
        if path.name == CONFIG_FILE:
            seen.append((path.parent.name, (path.parent / RESULT_FILE).exists(), (path.parent / INPUTS_FILE).exists()))
            raise KeyboardInterrupt  # the process dies here
        return real_write_json(path, data)

    monkeypatch.setattr(local_executor, "write_json", crash_on_config)
    with pytest.raises(KeyboardInterrupt):
        project.run()
    assert seen == [("train-target", False, False)]
    monkeypatch.undo()
    assert project.run() == ["r1/train-target", "r1/train-redteam", "r1/evaluate"]


# --- one run per folder ---------------------------------------------------------------


def _seas_run(project: Project) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seas_operator.cli", "run", str(project.file), "--output", str(project.out), "--quiet"],
                          capture_output=True, text=True, timeout=120)


def test_a_second_seas_run_into_the_same_folder_is_refused(project):
    with OutputLock(project.out):
        second = _seas_run(project)
    assert second.returncode == 2
    assert second.stderr.splitlines() == [
        f"seas: another 'seas run' is using {project.out} (pid {os.getpid()}); wait for it or choose another --output"]
    assert not (project.out / "r0").exists()


def _wait_for(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    time.sleep(0.05)  # the writer may not have written its content yet
    return path.read_text()


def test_a_run_in_progress_holds_the_folder_until_it_dies(project, tmp_path):
    release = tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from seas_operator.loading import load_evolution; "
         "from seas_operator.local_executor import run_local; "
         "run_local(load_evolution(sys.argv[1]), Path(sys.argv[2]), show_progress=False, runtime=[sys.executable, sys.argv[3]])",
         str(project.file), str(project.out), str(project.runtime)],
        env={**os.environ, "FAKE_BLOCK": str(release)}, stderr=subprocess.DEVNULL)
    stage_pid = None
    try:
        stage_pid = int(_wait_for(Path(f"{release}.started")))
        with pytest.raises(OutputBusy) as busy:
            project.run()
        assert busy.value.pid == first.pid
        assert f"(pid {first.pid})" in str(busy.value)

        first.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the lock
        first.wait(timeout=30)
        os.kill(stage_pid, signal.SIGKILL)  # its orphaned stage, which must not hold the lock either way
        assert project.run() == ["r0/evaluate", *ROUND_1]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if stage_pid is not None:
            try:
                os.kill(stage_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_lock_is_free_again_after_a_run(project):
    project.run()
    with OutputLock(project.out):
        pass
    assert _seas_run(project).returncode == 0


# --- fingerprints (pure) -----------------------------------------------------------------

CONFIG = {"stage": "evaluate", "round": 1, "target": {"model": "/out/r1/train-target/model"}}


@pytest.mark.parametrize("config, upstream, same", [
    (CONFIG, {"r1/train-target": "a", "r1/train-redteam": "b"}, True),
    (dict(reversed(list(CONFIG.items()))), {"r1/train-redteam": "b", "r1/train-target": "a"}, True),  # order does not matter
    ({**CONFIG, "round": 2}, {"r1/train-target": "a", "r1/train-redteam": "b"}, False),  # its own config changed
    (CONFIG, {"r1/train-target": "A", "r1/train-redteam": "b"}, False),  # an input was made again
    (CONFIG, {"r1/train-target": "a"}, False),  # an input less
    (CONFIG, {"r1/train-target": "a", "r1/train-redteam": "b", "r0/initialize": "c"}, False),  # an input more
])
def test_inputs_fingerprint(config, upstream, same):
    reference = inputs_fingerprint(CONFIG, {"r1/train-target": "a", "r1/train-redteam": "b"})
    assert (inputs_fingerprint(config, upstream) == reference) is same


@pytest.mark.parametrize("result, inputs, run, same", [
    ('{"round": 1}', "i", "run1", True),
    ('{"round": 2}', "i", "run1", False),  # another result
    ('{"round": 1}', "j", "run1", False),  # made from other inputs
    ('{"round": 1}', "i", "run2", False),  # the same result from another run: its artifacts may differ
])
def test_output_fingerprint(result, inputs, run, same):
    assert (output_fingerprint(result, inputs, run) == output_fingerprint('{"round": 1}', "i", "run1")) is same


def test_dependency_closure_names_every_stage_a_stage_is_made_from():
    graph = stage_graph(make_spec(rounds=2, init=True))
    closure = dependency_closure(graph)
    labels = {key.label: [d.label for d in deps] for key, deps in closure.items()}
    assert labels["r0/initialize"] == []
    assert labels["r1/attack"] == ["r0/initialize", "r0/evaluate"]
    assert labels["r1/train-target"] == ["r0/initialize", "r0/evaluate", "r1/attack", "r1/pairs"]  # not its sibling
    assert labels["r2/evaluate"][:3] == ["r0/initialize", "r0/evaluate", "r1/attack"]
    assert set(labels["r2/evaluate"]) == {key.label for key, _ in graph} - {"r2/evaluate"}
    assert closure[StageKey(2, Stage.EVALUATE)][-1] == StageKey(2, Stage.TRAIN_REDTEAM)


# --- atomic model folders ------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_dir_replaces_an_existing_folder_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.safetensors").write_text("old")
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(temp_prefix("model"))
        (tmp / "new.safetensors").write_text("new")
        assert (target / "old.safetensors").exists()  # readers still see the old model while the new one is written
    assert sorted(p.name for p in target.iterdir()) == ["new.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # nothing left aside


def test_atomic_dir_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.safetensors").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.safetensors").write_text("ha")
            raise RuntimeError("out of disk")
    assert sorted(p.name for p in target.iterdir()) == ["old.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_replace_dir_puts_a_folder_where_a_file_was(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("a")
    (tmp_path / "model").write_text("not a folder")
    replace_dir(tmp_path / "new", tmp_path / "model")
    assert (tmp_path / "model" / "a").read_text() == "a" and not (tmp_path / "new").exists()


def test_atomic_dir_removes_what_dead_writers_left_and_keeps_live_ones(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    for name in (f".model.tmp-{dead}-abc", f".model.old-{dead}-def", f".model.tmp-{live}-ghi", f".records.tmp-{dead}-jkl"):
        (tmp_path / name).mkdir()
    (tmp_path / f".model.tmp-{dead}-file").write_text("half")
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("w")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".model.tmp-{live}-ghi", f".records.tmp-{dead}-jkl", "model"])


@pytest.mark.parametrize("entry, name, owner", [
    (".model.tmp-123-abc", None, 123),
    (".model.old-123-abc", "model", 123),
    (".model.tmp-123-abc", "records", None),  # another target's temp
    (".result.json.tmp-7-x1y2", "result.json", 7),  # a file written by write_text
    ("model", None, None),
    (".model.lock", None, None),
    (".model.tmp-abc-1", None, None),  # no pid
    (".seas-run.lock", None, None),
])
def test_temp_owner(entry, name, owner):
    assert temp_owner(entry, name) == owner


def test_remove_stale_temps_of_a_missing_folder_is_nothing(tmp_path):
    assert remove_stale_temps(tmp_path / "nowhere") == []


def test_seas_run_clears_what_a_killed_stage_left(project):
    project.run()
    stage = project.out / "r1" / "train-target"
    leftover = stage / f".model.tmp-{_dead_pid()}-xyz"
    leftover.mkdir()
    (leftover / "model.safetensors").write_text("half")
    assert project.run() == []
    assert not leftover.exists() and (stage / "model" / "weights.txt").read_text() == "0.1"
