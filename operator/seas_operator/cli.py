"""``seas``: the user-facing command.

    seas run FILE [--output DIR] [--fail-on-gate]
                                   run a SafetyEvolution on this machine (resumable);
                                   writes report.json, report.md, asr.png and report.html
    seas compare RUN_A RUN_B [--json]
                                   per-figure changes between two runs, with significance
    seas validate FILE             check a SafetyEvolution without running it
    seas plan FILE [--round N] [--stage S] [-o yaml|json]
                                   print the child objects the operator would create
    seas judge-eval FILE --classifier TYPE [--model M] [--json]
                                   measure a safety judge against labelled answers
    seas crd                       print the CustomResourceDefinition
    seas operator [...]            run the Kubernetes operator

Exit codes: 0 success, 1 a stage failed, 2 bad input (one message per problem)
or an output folder another ``seas run`` is using, 4 (``seas run --fail-on-gate``)
every stage finished but the last round failed its gates, 130 interrupted.
``seas --version`` prints the package version.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .api import SafetyEvolution
from .loading import SpecError, load_evolution
from .planner import describe
from .recheck import ignored_message
from .report import Report

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 4  # not 3: seas-runtime's EXIT_INPUT, which a user may see beside it in a stage's log


def package_version() -> str:
    """The installed distribution's version (what pip reports), else the package's own ``__version__``."""
    try:
        return metadata.version("seas-operator")
    except metadata.PackageNotFoundError:
        return __version__


def _load(path: str) -> Optional[SafetyEvolution]:
    """The evolution in ``path``, or None after printing one line per problem."""
    try:
        return load_evolution(path)
    except SpecError as error:
        print(f"seas: {error.source} is not a valid SafetyEvolution:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def _note_ignored(evolution: SafetyEvolution) -> None:
    """Say which fields the spec's mode ignores (accepted, so a training spec can be switched to mode evaluate as it is)."""
    ignored = evolution.spec.ignored_settings()
    if ignored:
        print(f"seas: note: {ignored_message(ignored, evolution.spec.evaluate_only)}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    evolution = _load(args.file)
    if evolution is None:
        return EXIT_USAGE
    print(f"{args.file}: SafetyEvolution {evolution.metadata.name!r} is valid ({describe(evolution.spec)})")
    _note_ignored(evolution)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    evolution = _load(args.file)
    if evolution is None:
        return EXIT_USAGE
    from .local_executor import OutputBusy, OutputLock, StageFailed, run_local, summarize
    from .report import rate_text
    from .report_files import write_report

    out = Path(args.output or Path("runs") / evolution.metadata.name)
    lock = OutputLock(out)
    try:
        lock.acquire()  # held through the report too, so two runs never interleave their writes
    except OutputBusy as busy:
        print(f"seas: {busy}", file=sys.stderr)
        return EXIT_USAGE
    try:
        print(f"seas: running {evolution.metadata.name!r} ({describe(evolution.spec)}) into {out}", file=sys.stderr)
        _note_ignored(evolution)
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
            print(f"seas: report in {out / 'report.html'}, {out / 'report.md'}, {out / 'report.json'} and {out / 'asr.png'}", file=sys.stderr)
            for r in report.rounds:
                print(f"round {r.round}: direct ASR {rate_text(r.directASR)}, adversarial ASR {rate_text(r.adversarialASR)}, "
                      f"contrast refusal {rate_text(r.contrastRefusalRate)}, benign refusal {rate_text(r.benignRefusalRate)}, "
                      f"QA accuracy {rate_text(r.qaAccuracy)}" + (" (regressed)" if r.regressed else ""))
        code = run_exit_code(code, report, args.fail_on_gate)
        if code == EXIT_GATE:
            print(f"seas: round {report.rounds[-1].round} failed its gates (--fail-on-gate): exit code {EXIT_GATE}", file=sys.stderr)
        return code
    finally:
        lock.release()


def run_exit_code(stage_code: int, report: Report, fail_on_gate: bool) -> int:
    """``seas run``'s exit code: a failed stage first; then, with ``--fail-on-gate``, EXIT_GATE when the last round failed a gate.

    A last round without a gate (a training run's baseline) fails nothing: there was nothing to promote.
    """
    if stage_code or not fail_on_gate or not report.rounds:
        return stage_code
    gate = report.rounds[-1].gate
    return EXIT_GATE if gate is not None and not gate.passed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_reports, render_comparison

    reports = []
    for run in (args.run_a, args.run_b):
        path = Path(run) / "report.json" if Path(run).is_dir() else Path(run)
        try:
            reports.append(Report.model_validate_json(path.read_text(encoding="utf-8")))
        except OSError as error:
            print(f"seas: cannot read {path} ({error.strerror or error}); give a run folder that 'seas run' wrote, or its report.json",
                  file=sys.stderr)
            return EXIT_USAGE
        except ValueError as error:
            print(f"seas: {path} is not a SEAS report: {str(error).splitlines()[0]}", file=sys.stderr)
            return EXIT_USAGE
    try:
        comparison = compare_reports(*reports, label_a=args.run_a, label_b=args.run_b, round_a=args.round, round_b=args.round)
    except ValueError as error:
        print(f"seas: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(comparison.model_dump_json(indent=2) + "\n" if args.json else render_comparison(comparison))
    return 0


def judge_eval(argv: Sequence[str]) -> int:
    """``seas judge-eval``: the judge runs in the data plane (it may load a model), so the arguments go to seas-runtime as they are."""
    return subprocess.run([sys.executable, "-m", "seas_runtime.cli", "judge-eval", *argv]).returncode


def cmd_plan(args: argparse.Namespace) -> int:
    """``seas plan``: what the operator would create, for review or ``kubectl apply --dry-run=server -f -``."""
    evolution = _load(args.file)
    if evolution is None:
        return EXIT_USAGE
    import os

    from .plan import PlanError, plan, render
    from .settings import SettingsError, load_settings

    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        print(f"seas: the operator settings in the environment are invalid: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sys.stdout.write(render(plan(evolution, settings, args.stage, args.round), args.output, source=args.file))
    except PlanError as error:
        print(f"seas: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from .crd import render_crd

    sys.stdout.write(render_crd())
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from .operator_main import run_operator

    return run_operator(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seas", description="SEAS Operator: self-evolving adversarial safety for LLMs.")
    parser.add_argument("--version", action="version", version=f"seas {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a SafetyEvolution on this machine")
    run.add_argument("file")
    run.add_argument("--output", "-o", help="output directory (default runs/<name>)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bars or stage messages")
    run.add_argument("--fail-on-gate", action="store_true",
                     help=f"exit with code {EXIT_GATE} when every stage finished but the last round failed its gates (for CI)")
    run.set_defaults(func=cmd_run)
    compare = sub.add_parser("compare", help="per-figure changes between two runs, each with its interval and a significance mark")
    compare.add_argument("run_a", metavar="RUN_A", help="the first run's output folder (or its report.json)")
    compare.add_argument("run_b", metavar="RUN_B", help="the second run's output folder (or its report.json); changes are B - A")
    compare.add_argument("--round", type=int, help="compare this round of both runs (default: each run's last round)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(func=cmd_compare)
    validate = sub.add_parser("validate", help="validate a SafetyEvolution file")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
    plan_cmd = sub.add_parser("plan", help="print the child objects the operator would create for a stage (like helm template)")
    plan_cmd.add_argument("file")
    plan_cmd.add_argument("--round", "-r", type=int, help="round to plan (default: every round, or the first that runs --stage)")
    plan_cmd.add_argument("--stage", "-s", help="stage to plan, e.g. train-target or r1/train-target (default: every stage)")
    plan_cmd.add_argument("--output", "-o", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    plan_cmd.set_defaults(func=cmd_plan)
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
