"""``list``: the registered checks (id, component, impact) and which backends can run here."""
from __future__ import annotations

from .. import adapters
from ..checks import REGISTRY

NAME = "list"
HELP = "list checks and backends"


def add_arguments(parser) -> None:
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci")


def main(args) -> int:
    for cid in sorted(REGISTRY):
        c = REGISTRY[cid]
        print(f"{cid:<38} {c.component:<24} {c.impact:<7} {len(c.cases(args.profile)):3d} cases  {c.summary}")
    print()
    resolved = adapters.resolve_all(None)
    for a in resolved.adapters:
        print(f"backend {a.name}: available")
    for name, why in resolved.unavailable.items():
        print(f"backend {name}: unavailable ({why})")
    return 0
