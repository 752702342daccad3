"""The local executor behind ``seas run``: each stage as a ``seas-runtime`` subprocess.

Resumable: a stage whose ``result.json`` parses and whose recorded config equals
the config it would get now is skipped. Stage logs go to ``stage.log`` beside
the result; progress lines from the runtime drive the bars.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from seas_runtime.artifacts import write_json
from seas_runtime.contract import StageConfig, StageKey, StageResult, dump_stage_config, parse_stage_result
from seas_runtime.layout import CONFIG_FILE, LOG_FILE, RESULT_FILE, stage_dir

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


def _parse_result(path: Path) -> StageResult:
    return parse_stage_result(path.read_text(encoding="utf-8"))


def previous_result(directory: Path, config: StageConfig) -> Optional[StageResult]:
    """The stage's earlier result when it finished under the same config, else None."""
    try:
        recorded = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        if recorded != dump_stage_config(config):
            return None
        return _parse_result(directory / RESULT_FILE)
    except (OSError, ValueError):
        return None


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


def run_stage(key: StageKey, config: StageConfig, directory: Path, bars: Bars, runtime: list[str]) -> StageResult:
    """Run one stage to completion; raise StageFailed with the log's tail when it fails."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = write_json(directory / CONFIG_FILE, dump_stage_config(config))
    (directory / RESULT_FILE).unlink(missing_ok=True)
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
        return _parse_result(directory / RESULT_FILE)
    except (OSError, ValueError) as exc:
        raise StageFailed(key, code, f"malformed or missing {RESULT_FILE}: {exc}", log_path) from None


def run_local(
    evolution: SafetyEvolution,
    out: Path,
    show_progress: bool = True,
    runtime: Optional[list[str]] = None,
    on_stage: Optional[Callable[[StageKey, str], None]] = None,
) -> dict[StageKey, StageResult]:
    """Run (or resume) every stage of the evolution under ``out``; return the finished results."""
    runtime = runtime or [sys.executable, "-m", "seas_runtime.cli"]
    spec, name = evolution.spec, evolution.metadata.name
    out = out.resolve()
    done: dict[StageKey, StageResult] = {}
    bars = Bars(len(stage_graph(spec)), show_progress)
    try:
        while True:
            ready = next_stages(spec, done)
            if not ready:
                break
            for key in ready:
                config = build_stage_config(name, spec, key, done, str(out))  # embedded models cache per user, shared by runs
                directory = Path(stage_dir(str(out), key))
                bars.stage(key.label)
                result = previous_result(directory, config)
                if result is not None:
                    if on_stage:
                        on_stage(key, "skipped (already done)")
                else:
                    if on_stage:
                        on_stage(key, "started")
                    started = time.monotonic()
                    try:
                        result = run_stage(key, config, directory, bars, runtime)
                    except StageFailed as exc:
                        exc.done = dict(done)  # so the caller can still report what finished
                        raise
                    if on_stage:
                        on_stage(key, f"done in {time.monotonic() - started:.0f}s")
                done[key] = result
                bars.finish_stage()
    finally:
        bars.close()
    return done


def summarize(evolution: SafetyEvolution, done: dict[StageKey, StageResult]) -> Report:
    """The report of what has finished so far."""
    summaries = round_summaries(evolution.spec, done)
    return Report(evolution=evolution.metadata.name, complete=is_complete(evolution.spec, done),
                  promotedModel=promoted_model(summaries, evolution.spec.target.model), rounds=summaries)
