"""``list``: the registered checks (id, component, impact) and which backends can run here;
``--needs`` prints what each check asks of an adapter instead."""
from __future__ import annotations

from .. import adapters
from ..checks import REGISTRY
from ..needs import needs

NAME = "list"
HELP = "list checks and backends (--needs: the capabilities and adapter operations each check uses)"


def add_arguments(parser) -> None:
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci")
    parser.add_argument("--needs", action="store_true",
                        help="per check: the capabilities it needs, the adapter operations they promise and how a "
                             "port without JAX's PRNG is judged")


def main(args) -> int:
    if args.needs:
        for cid in sorted(REGISTRY):
            need = needs(REGISTRY[cid], args.profile)
            extra = f"; some cases: {', '.join(need.case_capabilities)}" if need.case_capabilities else ""
            print(f"{cid:<38} capabilities: {', '.join(need.capabilities)}{extra}")
            print(f"{'':<38} operations (through those capabilities): {', '.join(need.operations) or '-'}; {need.rng}")
        return 0
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
