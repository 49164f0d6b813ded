"""Arguments shared by the commands that run checks."""
from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci",
                        help="ci: fixed cases + derandomized hypothesis (the gate); deep: more examples and cases")
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="jax_reference | eggroll_torch | eggroll_torch-cuda | upstream | package.module:Adapter "
                             "(repeatable; default: every built-in backend that can run here)")
    parser.add_argument("--check", action="append", metavar="GLOB", help="only checks whose id matches (repeatable)")
    parser.add_argument("--vectors", metavar="DIR", help="golden vectors directory (default: the current version)")
    parser.add_argument("--baseline", metavar="FILE", help="baseline file (default: conformance/baseline.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines or summary table")


def parse_aliases(values: list[str] | None) -> dict:
    out = {}
    for v in values or []:
        name, sep, target = v.partition("=")
        if not sep or not name or not target:
            raise SystemExit(f"--judge-as expects BACKEND=BASELINE_BACKEND, got {v!r}")
        out[name] = target
    return out
