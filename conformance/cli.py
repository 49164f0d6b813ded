"""``python -m conformance <command>``: each command is a module of :mod:`conformance.commands`.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``;
adding a file there adds a subcommand (nothing else to edit).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .adapters import AdapterError, BackendUnavailable
from .checks.selection import UnknownCheck

# Mistakes in what the user asked for: one line on stderr and exit status 2, no traceback.
USAGE_ERRORS = (AdapterError, BackendUnavailable, UnknownCheck)


def command_modules() -> dict:
    """``{name: module}`` of every command module, in name order."""
    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        found[module.NAME] = module
    return dict(sorted(found.items()))


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="python -m conformance",
                                     description="EGGROLL parity harness: checks, golden vectors, reports, gate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    modules = command_modules()
    for name, module in modules.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].main(args) or 0)
    except USAGE_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
