"""``run``: every check on every backend, reports written, gate applied (exit 1 on regression)."""
from __future__ import annotations

from ._common import add_run_arguments, parse_aliases

NAME = "run"
HELP = "run the checks, write reports/ and apply the gate (make conformance)"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--report-dir", default="reports", help="where reports go (default: reports)")
    parser.add_argument("--no-reports", action="store_true", help="do not write reports")
    parser.add_argument("--no-gate", action="store_true", help="exit 0 even when the gate fails")
    parser.add_argument("--judge-as", action="append", metavar="BACKEND=BASELINE",
                        help="judge BACKEND against another backend's baseline entry (repeatable)")


def main(args) -> int:
    from ..session import execute

    outcome = execute(args.backend, args.profile, args.check, None if args.no_reports else args.report_dir,
                      args.vectors, args.baseline, parse_aliases(args.judge_as), args.quiet)
    if args.no_gate:
        return 0
    return 0 if outcome.gate.ok else 1
