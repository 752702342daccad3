"""``seas-runtime <stage> --config FILE``: run one stage, write its result.

stdout carries JSON progress lines and, last, ``{"result": ...}``; logs go to
stderr. The result is also written atomically to ``<outputDir>/result.json``
and, when asked, to a termination-message file for Kubernetes.

Exit codes: 0 done; 2 bad config; 3 bad data or model (a user mistake, with a
message and no traceback); 1 anything else (a bug: traceback on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from pydantic import ValidationError

from .artifacts import write_text
from .contract import Stage, dump_result, parse_stage_config
from .data import DataError
from .models import ModelError
from .layout import RESULT_FILE
from .problems import validation_problems
from .progress import Progress
from .stages import recipe

log = logging.getLogger("seas_runtime")

EXIT_CONFIG = 2
EXIT_INPUT = 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="seas-runtime", description="Run one SEAS stage.")
    parser.add_argument("stage", choices=[str(s) for s in Stage])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="stage config JSON file")
    source.add_argument("--config-env", metavar="VAR", help="read the stage config JSON from this environment variable (Kubernetes Jobs)")
    parser.add_argument("--termination-log", help="also write the result here (Kubernetes terminationMessagePath)")
    parser.add_argument("--log-level", default=os.environ.get("SEAS_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    where = args.config or f"${args.config_env}"
    try:
        if args.config:
            text = Path(args.config).read_text(encoding="utf-8")
        else:
            text = os.environ.get(args.config_env, "")
            if not text:
                print(f"seas-runtime: environment variable {args.config_env} is empty or unset", file=sys.stderr)
                return EXIT_CONFIG
        cfg = parse_stage_config(text)
    except OSError as exc:
        print(f"seas-runtime: cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidationError as exc:
        print(f"seas-runtime: invalid stage config {where}:", file=sys.stderr)
        for line in validation_problems(exc):
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG
    if cfg.stage != args.stage:
        print(f"seas-runtime: config is for stage {cfg.stage!r}, not {args.stage!r}", file=sys.stderr)
        return EXIT_CONFIG

    try:
        result = recipe(cfg.stage).run(cfg, Progress())
    except (DataError, ModelError) as exc:
        print(f"seas-runtime: {cfg.stage} failed: {exc}", file=sys.stderr)
        return EXIT_INPUT
    text = dump_result(result)
    write_text(Path(cfg.outputDir) / RESULT_FILE, text + "\n")
    if args.termination_log:
        # The kubelet mounts this one file; a temp-and-rename beside it is impossible.
        Path(args.termination_log).write_text(text, encoding="utf-8")
    sys.stdout.write(json.dumps({"result": json.loads(text)}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
