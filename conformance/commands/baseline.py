"""``baseline``: rewrite conformance/baseline.json from a fresh run (make conformance-baseline).

The run is ``run``'s own (:func:`conformance.commands.run.execute`) without reports; its results,
not its gate, become the new baseline.
"""
from __future__ import annotations

from .. import gate
from ..known_differences import REASONS
from ._common import add_run_arguments
from .run import execute

NAME = "baseline"
HELP = "run the checks and rewrite the committed baseline from the results (make conformance-baseline)"


def add_arguments(parser) -> None:
    add_run_arguments(parser)


def main(args) -> int:
    outcome = execute(args.backend, args.profile, args.check, None, args.vectors, args.baseline, None, args.quiet)
    previous = gate.load_baseline(args.baseline)
    doc = gate.make_baseline(outcome.results, previous, REASONS, args.profile)
    gate.write_baseline(doc, args.baseline)
    unexplained = [f"{b}/{c}" for b, checks in doc["backends"].items() for c, e in checks.items()
                   if e.get("reason", "").startswith(gate.UNEXPLAINED)]
    print(f"baseline written: {sum(len(c) for c in doc['backends'].values())} entries for "
          f"{', '.join(doc['backends'])}")
    if unexplained:
        print("known differences without a reason (add them to conformance/known_differences.py, then rerun):")
        print("\n".join(f"  {u}" for u in unexplained))
        return 1
    return 0
