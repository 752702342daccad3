"""``seas``: the user-facing command.

    seas run FILE [--output DIR]   run a SafetyEvolution on this machine (resumable)
    seas validate FILE             check a SafetyEvolution without running it
    seas judge-eval FILE --classifier TYPE [--model M] [--json]
                                   measure a safety judge against labelled answers
    seas crd                       print the CustomResourceDefinition
    seas operator [...]            run the Kubernetes operator

Exit codes: 0 success, 1 a stage failed, 2 bad input (one message per problem)
or an output folder another ``seas run`` is using.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from .api import SafetyEvolution
from .loading import SpecError, load_evolution

EXIT_FAILED = 1
EXIT_USAGE = 2


def _load(path: str) -> Optional[SafetyEvolution]:
    """The evolution in ``path``, or None after printing one line per problem."""
    try:
        return load_evolution(path)
    except SpecError as error:
        print(f"seas: {error.source} is not a valid SafetyEvolution:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    evolution = _load(args.file)
    if evolution is None:
        return EXIT_USAGE
    print(f"{args.file}: SafetyEvolution {evolution.metadata.name!r} is valid ({evolution.spec.rounds} rounds)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    evolution = _load(args.file)
    if evolution is None:
        return EXIT_USAGE
    from .local_executor import OutputBusy, OutputLock, StageFailed, run_local, summarize
    from .report import rate_text, write_report

    out = Path(args.output or Path("runs") / evolution.metadata.name)
    lock = OutputLock(out)
    try:
        lock.acquire()  # held through the report too, so two runs never interleave their writes
    except OutputBusy as busy:
        print(f"seas: {busy}", file=sys.stderr)
        return EXIT_USAGE
    try:
        print(f"seas: running {evolution.metadata.name!r} ({evolution.spec.rounds} rounds) into {out}", file=sys.stderr)
        done: dict = {}

        def announce(key, what: str) -> None:
            if not args.quiet:
                print(f"seas: {key.label}: {what}", file=sys.stderr)

        code = 0
        try:
            done = run_local(evolution, out, show_progress=not args.quiet and sys.stderr.isatty(), on_stage=announce, lock=False)
        except StageFailed as exc:
            print(f"seas: {exc}", file=sys.stderr)
            print("seas: fix the cause and run the same command again; finished stages are kept.", file=sys.stderr)
            code = EXIT_FAILED
            done = exc.done
        except KeyboardInterrupt:
            print("\nseas: interrupted; run the same command again to resume.", file=sys.stderr)
            return 130
        report = summarize(evolution, done)
        if report.rounds:
            write_report(report, out)
            print(f"seas: report in {out / 'report.md'}, {out / 'report.json'} and {out / 'asr.png'}", file=sys.stderr)
            for r in report.rounds:
                print(f"round {r.round}: direct ASR {rate_text(r.directASR)}, adversarial ASR {rate_text(r.adversarialASR)}, "
                      f"contrast refusal {rate_text(r.contrastRefusalRate)}, benign refusal {rate_text(r.benignRefusalRate)}, "
                      f"QA accuracy {rate_text(r.qaAccuracy)}" + (" (regressed)" if r.regressed else ""))
        return code
    finally:
        lock.release()


def judge_eval(argv: Sequence[str]) -> int:
    """``seas judge-eval``: the judge runs in the data plane (it may load a model), so the arguments go to seas-runtime as they are."""
    return subprocess.run([sys.executable, "-m", "seas_runtime.cli", "judge-eval", *argv]).returncode


def cmd_crd(args: argparse.Namespace) -> int:
    from .crd import render_crd

    sys.stdout.write(render_crd())
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from .operator_main import run_operator

    return run_operator(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seas", description="SEAS Operator: self-evolving adversarial safety for LLMs.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a SafetyEvolution on this machine")
    run.add_argument("file")
    run.add_argument("--output", "-o", help="output directory (default runs/<name>)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bars or stage messages")
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="validate a SafetyEvolution file")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
    sub.add_parser("judge-eval", help="measure a safety judge against labelled answers (seas judge-eval --help)")
    crd = sub.add_parser("crd", help="print the CustomResourceDefinition YAML")
    crd.set_defaults(func=cmd_crd)
    op = sub.add_parser("operator", help="run the Kubernetes operator")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    op.add_argument("--metrics-port", type=int, default=8080)
    op.add_argument("--health-port", type=int, default=8081)
    op.add_argument("--no-leader-election", action="store_true",
                    help="act at once without taking the leader-election Lease (one process only, for development)")
    op.set_defaults(func=cmd_operator)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["judge-eval"]:
        return judge_eval(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
