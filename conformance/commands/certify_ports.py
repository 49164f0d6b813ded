"""``certify-ports``: install published PyTorch ports on demand and certify each (make certify-ports)."""
from __future__ import annotations

NAME = "certify-ports"
HELP = ("install each catalog port (pip --no-deps, pinned) or load --backend package.module:Adapter, run every "
        "check and write reports/ports/<name>-<version>.md and .json")


def add_arguments(parser) -> None:
    from ..certify.certification import add_arguments as certify_arguments

    certify_arguments(parser)


def main(args) -> int:
    from ..certify.certification import main as certify_main

    return certify_main(args)
