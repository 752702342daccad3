"""``seas-runtime <stage> --config FILE``: run one stage, write its result.

stdout carries JSON progress lines and, last, ``{"result": ...}``; logs go to
stderr. The result is also written atomically to ``<outputDir>/result.json``
and, when asked, to a termination-message file for Kubernetes. Before the stage
runs, the expired cycle folders its config lists under ``prune`` are deleted
(the operator's ``spec.retention.checkpoints``; see :func:`prune_artifacts`).

Exit codes: 0 done; 2 bad config; 3 bad data or model (a user mistake, with a
message and no traceback); 1 anything else (a bug: traceback on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from pydantic import ValidationError

from .artifacts import write_text
from .contract import EXIT_CONFIG, EXIT_FAILED, EXIT_INPUT, USER_ERROR_EXIT_CODES, Stage, StageConfig, dump_result, parse_stage_config, user_error_message
from . import data
from .data import DataError
from .engine_pool import EnginePool
from .engines.endpoint import EndpointUnavailable
from .judge_eval import evaluate_judge
from .judges import make_judge
from .models import ModelError
from .layout import RESULT_FILE
from .problems import validation_problems
from .progress import Progress
from .settings import ClassifierSpec
from .stages import recipe

log = logging.getLogger("seas_runtime")



def judge_eval_main(argv: Sequence[str]) -> int:
    """``seas-runtime judge-eval FILE --classifier TYPE [--model M] [--json]``: a judge's agreement with labelled answers."""
    parser = argparse.ArgumentParser(prog="seas judge-eval", description="Measure a safety judge against labelled answers.")
    parser.add_argument("file", help="labelled answers: JSONL or CSV rows with prompt, response, label (safe|unsafe)")
    parser.add_argument("--classifier", required=True, choices=list(ClassifierSpec.model_fields["type"].annotation.__args__))
    parser.add_argument("--model", help="judge model (default: the classifier's own)")
    parser.add_argument("--engine", default="auto", choices=["auto", "transformers", "vllm"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("SEAS_LOG_LEVEL", "WARNING").upper())
    try:
        spec = ClassifierSpec(type=args.classifier, model=args.model, engine=args.engine, dtype=args.dtype)
        if not 0.5 <= args.confidence < 1:
            raise ValueError("--confidence must be at least 0.5 and below 1")
    except (ValidationError, ValueError) as exc:
        lines = validation_problems(exc) if isinstance(exc, ValidationError) else [str(exc)]
        print("seas judge-eval: " + "; ".join(lines), file=sys.stderr)
        return EXIT_CONFIG
    pool = EnginePool(cache=None, batch_size=16, seed=0)
    try:
        items = data.load("judge", args.file)
        evaluation = evaluate_judge(make_judge(spec, pool.get), items, args.confidence)
    except (DataError, ModelError) as exc:
        print(f"seas judge-eval: {exc}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        pool.close()
    print(evaluation.model_dump_json(indent=2) if args.json else "\n".join(evaluation.lines()))
    return 0


def prune_artifacts(cfg: StageConfig) -> list[str]:
    """Delete the expired cycle folders ``cfg.prune`` lists (spec.retention.checkpoints); return those deleted.

    The config travels through the cluster, so a listed path is trusted only when it is absolute and resolves
    (symlinks followed) to a folder strictly inside this evolution's own folder (the parent of the cycle folder
    that holds ``cfg.outputDir``) and outside the running cycle's folder, so it never holds ``cfg.outputDir``
    nor anything this cycle made; anything else is refused with a warning.
    """
    output = Path(cfg.outputDir).resolve()
    cycle = output.parent.parent  # <evolution>/c<cycle>/r<round>/<stage>
    evolution = cycle.parent
    removed = []
    for listed in cfg.prune:
        try:
            target = Path(listed).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop: pruning never fails the stage it precedes
            log.warning("prune: refusing %s: %s", listed, exc)
            continue
        overlaps_cycle = target == cycle or cycle in target.parents or target in cycle.parents
        if not Path(listed).is_absolute() or evolution not in target.parents or overlaps_cycle:
            log.warning("prune: refusing %s: not a folder of an earlier cycle inside %s", listed, evolution)
            continue
        if not target.exists():
            continue
        shutil.rmtree(target, ignore_errors=True)
        removed.append(str(target))
        log.info("prune: deleted %s (expired cycle, spec.retention.checkpoints)", target)
    return removed


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["judge-eval"]:
        return judge_eval_main(argv[1:])
    parser = argparse.ArgumentParser(prog="seas-runtime", description="Run one SEAS stage, or measure a judge (seas-runtime judge-eval --help).")
    parser.add_argument("stage", choices=[str(s) for s in Stage])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="stage config JSON file")
    source.add_argument("--config-env", metavar="VAR", help="read the stage config JSON from this environment variable (Kubernetes Jobs)")
    parser.add_argument("--termination-log", help="also write the result here (Kubernetes terminationMessagePath)")
    parser.add_argument("--log-level", default=os.environ.get("SEAS_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    code, problem = _run_stage(args)
    if problem:
        print(problem, file=sys.stderr)
        if args.termination_log and code in USER_ERROR_EXIT_CODES:
            Path(args.termination_log).write_text(user_error_message(code, problem)[:3500], encoding="utf-8")  # the kubelet keeps 4 KiB
    return code


def _run_stage(args: argparse.Namespace) -> tuple[int, str]:
    """(exit code, a one-line message when it failed without a traceback, else ""): runs the stage and writes its result."""
    where = args.config or f"${args.config_env}"
    try:
        if args.config:
            text = Path(args.config).read_text(encoding="utf-8")
        else:
            text = os.environ.get(args.config_env, "")
            if not text:
                return EXIT_CONFIG, f"seas-runtime: environment variable {args.config_env} is empty or unset"
        cfg = parse_stage_config(text)
    except OSError as exc:
        return EXIT_CONFIG, f"seas-runtime: cannot read {args.config}: {exc.strerror or exc}"
    except ValidationError as exc:
        return EXIT_CONFIG, f"seas-runtime: invalid stage config {where}: " + "; ".join(validation_problems(exc))
    if cfg.stage != args.stage:
        return EXIT_CONFIG, f"seas-runtime: config is for stage {cfg.stage!r}, not {args.stage!r}"

    prune_artifacts(cfg)
    try:
        result = recipe(cfg.stage).run(cfg, Progress())
    except (DataError, ModelError) as exc:
        return EXIT_INPUT, f"seas-runtime: {cfg.stage} failed: {exc}"
    except EndpointUnavailable as exc:  # the operator retries the stage later, as it would a crash
        return EXIT_FAILED, f"seas-runtime: {cfg.stage} failed: {exc}"
    if result is None:  # a rank other than 0 of a torchrun launch: rank 0 writes the result
        return 0, ""
    text = dump_result(result)
    write_text(Path(cfg.outputDir) / RESULT_FILE, text + "\n")
    if args.termination_log:
        # The kubelet mounts this one file; a temp-and-rename beside it is impossible.
        Path(args.termination_log).write_text(text, encoding="utf-8")
    sys.stdout.write(json.dumps({"result": json.loads(text)}) + "\n")
    sys.stdout.flush()
    return 0, ""


if __name__ == "__main__":
    sys.exit(main())
