"""The local executor behind ``seas run``: each stage as a ``seas-runtime`` subprocess.

Resumable: when a stage finishes, ``inputs.json`` beside its ``result.json``
records the fingerprint of what it was made from: its config and the
fingerprints of every stage it depends on (directly or not). On the next run a
stage is skipped only when that recorded fingerprint equals the one computed
now. A stage's own fingerprint covers its result, its inputs and a fresh id
per run, so a stage that runs again makes every stage after it run again too
(editing ``training.beta`` retrains and then re-evaluates).

One run per output folder: ``run_local`` holds an exclusive ``flock`` on
``<out>/.seas-run.lock`` for the whole run (the kernel drops it when the process
dies) and raises :class:`OutputBusy` when another run holds it.

A stage that runs again first loses its ``inputs.json`` and ``result.json``, and
only then gets its new ``config.json``, so an old result is never paired with a
new config. Temps that dead writers left in the stage folders are removed when
a run starts. Stage logs go to ``stage.log`` beside the result; progress lines
from the runtime drive the bars.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Optional, Sequence

from seas_runtime.artifacts import remove_stale_temps, write_json
from seas_runtime.contract import StageConfig, StageKey, StageResult, dump_stage_config, parse_stage_result
from seas_runtime.layout import CONFIG_FILE, INPUTS_FILE, LOCK_FILE, LOG_FILE, RESULT_FILE, stage_dir

from .api import SafetyEvolution
from .planner import is_complete, next_stages, stage_graph
from .report import Report
from .rounds import promoted_model, round_summaries
from .stage_configs import build_stage_config


class StageFailed(RuntimeError):
    """A stage exited non-zero or left no valid result."""

    def __init__(self, key: StageKey, code: int, tail: str, log: Path) -> None:
        super().__init__(f"stage {key.label} failed (exit code {code}); log: {log}\n{tail}")
        self.key, self.code = key, code
        self.done: dict[StageKey, StageResult] = {}


class OutputBusy(RuntimeError):
    """Another ``seas run`` holds the output folder's lock."""

    def __init__(self, out: Path, pid: Optional[int]) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"another 'seas run' is using {out} ({holder}); wait for it or choose another --output")
        self.out, self.pid = out, pid


class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``<out>/.seas-run.lock``, holding the owner's pid for the message.

    The file is never removed: a run that unlinked it could let two others lock two different files.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.fd: Optional[int] = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`OutputBusy` at once."""
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise OutputBusy(self.out, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None  # the holder has not written its pid yet


# --- fingerprints (pure) -----------------------------------------------------------


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def inputs_fingerprint(config: Mapping, upstream: Mapping[str, str]) -> str:
    """The fingerprint of what a stage is made from: its dumped config and the fingerprints of the stages it depends on, by label."""
    return _digest({"config": config, "upstream": dict(upstream)})


def output_fingerprint(result_text: str, inputs: str, run: str) -> str:
    """The fingerprint of one finished run of a stage: its result as written, its inputs fingerprint and its run id.

    The run id makes every rerun a new fingerprint, even one that wrote the same
    result, since its artifacts (a model's weights) may still differ.
    """
    return _digest({"result": result_text, "inputs": inputs, "run": run})


def dependency_closure(graph: Sequence[tuple[StageKey, tuple[StageKey, ...]]]) -> dict[StageKey, tuple[StageKey, ...]]:
    """Every stage each stage depends on, directly or not, in graph order."""
    order = {key: i for i, (key, _) in enumerate(graph)}
    closure: dict[StageKey, set[StageKey]] = {}
    for key, deps in graph:  # execution order: a dependency's closure is known before its dependents'
        closure[key] = set(deps).union(*(closure[d] for d in deps))
    return {key: tuple(sorted(deps, key=order.__getitem__)) for key, deps in closure.items()}


# --- one stage ---------------------------------------------------------------------


class Finished(NamedTuple):
    """A stage's result and the fingerprint stages after it are made from."""

    result: StageResult
    fingerprint: str


def previous_run(directory: Path, inputs: str) -> Optional[Finished]:
    """The stage's earlier run when it was made from the same inputs fingerprint, else None."""
    try:
        record = json.loads((directory / INPUTS_FILE).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("inputs") != inputs:
            return None
        text = (directory / RESULT_FILE).read_text(encoding="utf-8")
        return Finished(parse_stage_result(text), output_fingerprint(text, inputs, str(record["run"])))
    except (OSError, ValueError, KeyError):
        return None


def _record_run(directory: Path, result_text: str, inputs: str, upstream: Mapping[str, str]) -> str:
    """Write ``inputs.json`` for a run that just finished; return its output fingerprint."""
    run = uuid.uuid4().hex
    write_json(directory / INPUTS_FILE, {"inputs": inputs, "run": run, "finishedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "upstream": dict(upstream)})
    return output_fingerprint(result_text, inputs, run)


class Bars:
    """tqdm bars: one for the whole evolution, one for the stage's current task."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.tqdm = tqdm
        self.enabled = enabled
        self.overall = tqdm(total=total, desc="stages", unit="stage", position=0, disable=not enabled, dynamic_ncols=True)
        self.task = None
        self.task_name = None

    def stage(self, label: str) -> None:
        self.overall.set_postfix_str(label)

    def progress(self, task: str, done: int, total: int) -> None:
        if task != self.task_name:
            if self.task is not None:
                self.task.close()
            self.task = self.tqdm(total=total, desc=f"  {task}", position=1, leave=False, disable=not self.enabled, dynamic_ncols=True)
            self.task_name = task
        self.task.update(done - self.task.n)

    def finish_stage(self) -> None:
        if self.task is not None:
            self.task.close()
        self.task, self.task_name = None, None
        self.overall.update(1)

    def close(self) -> None:
        if self.task is not None:
            self.task.close()
        self.overall.close()


def run_stage(key: StageKey, config: StageConfig, directory: Path, bars: Bars, runtime: list[str],
              upstream: Optional[Mapping[str, str]] = None) -> Finished:
    """Run one stage to completion and record its inputs; raise StageFailed with the log's tail when it fails.

    ``upstream`` holds the fingerprints of the stages it depends on, by label.
    """
    upstream = dict(upstream or {})
    directory.mkdir(parents=True, exist_ok=True)
    dumped = dump_stage_config(config)
    inputs = inputs_fingerprint(dumped, upstream)
    # The marker of freshness goes first, then the result: a crash at any point leaves no old result beside the new config.
    (directory / INPUTS_FILE).unlink(missing_ok=True)
    (directory / RESULT_FILE).unlink(missing_ok=True)
    config_path = write_json(directory / CONFIG_FILE, dumped)
    log_path = directory / LOG_FILE
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([*runtime, key.stage, "--config", str(config_path)], stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and "progress" in message:
                p = message["progress"]
                bars.progress(p["task"], p["done"], p["total"])
        code = proc.wait()
    if code != 0:
        tail = "".join(deque(open(log_path, encoding="utf-8", errors="replace"), maxlen=15))
        raise StageFailed(key, code, tail, log_path)
    try:
        text = (directory / RESULT_FILE).read_text(encoding="utf-8")
        result = parse_stage_result(text)
    except (OSError, ValueError) as exc:
        raise StageFailed(key, code, f"malformed or missing {RESULT_FILE}: {exc}", log_path) from None
    return Finished(result, _record_run(directory, text, inputs, upstream))


def _sweep(out: Path, graph: Sequence[tuple[StageKey, tuple[StageKey, ...]]]) -> None:
    """Remove the temps that writers which died (a killed run, a stage out of memory) left in ``out`` and its stage folders."""
    remove_stale_temps(out)
    for key, _ in graph:
        remove_stale_temps(stage_dir(str(out), key))


def run_local(
    evolution: SafetyEvolution,
    out: Path,
    show_progress: bool = True,
    runtime: Optional[list[str]] = None,
    on_stage: Optional[Callable[[StageKey, str], None]] = None,
    lock: bool = True,
) -> dict[StageKey, StageResult]:
    """Run (or resume) every stage of the evolution under ``out``; return the finished results.

    Holds the output lock for the run (raises :class:`OutputBusy` when another run
    has it); pass ``lock=False`` when the caller already holds ``OutputLock(out)``.
    """
    if lock:
        with OutputLock(out):
            return run_local(evolution, out, show_progress, runtime, on_stage, lock=False)
    runtime = runtime or [sys.executable, "-m", "seas_runtime.cli"]
    spec, name = evolution.spec, evolution.metadata.name
    out = out.resolve()
    graph = stage_graph(spec)
    inputs_of = dependency_closure(graph)
    _sweep(out, graph)
    done: dict[StageKey, StageResult] = {}
    fingerprints: dict[StageKey, str] = {}
    bars = Bars(len(graph), show_progress)
    try:
        while True:
            ready = next_stages(spec, done)
            if not ready:
                break
            for key in ready:
                config = build_stage_config(name, spec, key, done, str(out))  # embedded models cache per user, shared by runs
                upstream = {dep.label: fingerprints[dep] for dep in inputs_of[key]}
                directory = Path(stage_dir(str(out), key))
                bars.stage(key.label)
                finished = previous_run(directory, inputs_fingerprint(dump_stage_config(config), upstream))
                if finished is not None:
                    if on_stage:
                        on_stage(key, "skipped (already done)")
                else:
                    if on_stage:
                        on_stage(key, "started")
                    started = time.monotonic()
                    try:
                        finished = run_stage(key, config, directory, bars, runtime, upstream)
                    except StageFailed as exc:
                        exc.done = dict(done)  # so the caller can still report what finished
                        raise
                    if on_stage:
                        on_stage(key, f"done in {time.monotonic() - started:.0f}s")
                done[key], fingerprints[key] = finished
                bars.finish_stage()
    finally:
        bars.close()
    return done


def summarize(evolution: SafetyEvolution, done: dict[StageKey, StageResult]) -> Report:
    """The report of what has finished so far."""
    summaries = round_summaries(evolution.spec, done)
    return Report(evolution=evolution.metadata.name, complete=is_complete(evolution.spec, done),
                  promotedModel=promoted_model(summaries, evolution.spec.target.label), rounds=summaries)
