"""``check-adapter``: is an adapter safe to certify with, before any verdict is trusted?

A certification can only be as right as its adapter. This command loads one adapter and checks
the adapter itself, never the port's numbers:

1. declared capabilities are names a check knows (a typo would silently skip every check that
   needs the intended one), and each declared operation capability's methods are overridden;
2. per check, what is missing for it to run fully (``conformance.needs.missing_for``);
3. per check that runs, its first case computed twice on the same inputs: the inputs must be
   left unchanged, the first call's outputs must not change when the second runs (outputs that
   alias port state, e.g. ``.numpy()`` views of tensors the port updates in place), both calls
   must agree (no hidden state between calls), and every output must have the reference's
   shape and the reference's dtype (float32 for bfloat16 only where the adapter declares
   ``widens_bfloat16``).

A :class:`~conformance.adapters.trainer.TrainerAdapter` is checked by running one generation on
the probe: the port must evaluate all N members, call the fitness with a member axis and update
the probe's parameters in place.

Exit status: 0 when nothing was found, 1 when a problem was found, 2 when the adapter cannot be
loaded.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import adapters
from ..adapters import base as caps
from ..adapters.trainer import is_trainer_adapter
from ..checks import select_checks
from ..golden import VectorStore
from ..needs import missing_for
from ..reference import Reference, live_reference
from ..runner import plan
from ..tolerances import dtype_name
from ..trainer_checks import Observer
from ..trainer_checks._common import NOISE

NAME = "check-adapter"
HELP = "check an adapter before certifying with it: capabilities, missing operations, aliasing, shapes, dtypes"


def add_arguments(parser) -> None:
    parser.add_argument("--backend", required=True, metavar="SPEC",
                        help="the adapter: a built-in name, package.module:Adapter or path/to/adapter.py[:Adapter]")
    parser.add_argument("--check", action="append", metavar="GLOB", help="only checks whose id matches (repeatable)")
    parser.add_argument("--vectors", metavar="DIR", help="golden vectors directory (shapes and dtypes when no JAX)")


@dataclass
class Probe:
    """What probing one check found: ``problems`` (the adapter is wrong) and ``notes``."""

    check_id: str
    operations: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


class _Recorder:
    """Forwards every attribute to the adapter and records which protocol operations are called."""

    _OPERATIONS = frozenset(op for ops in caps.CAPABILITY_OPERATIONS.values() for op in ops)

    def __init__(self, adapter):
        self._adapter = adapter
        self.called = []

    def __getattr__(self, name):
        value = getattr(self._adapter, name)
        if name in self._OPERATIONS:
            def recorded(*args, **kwargs):
                self.called.append(name)
                return value(*args, **kwargs)
            return recorded
        return value


def declarations(adapter) -> tuple[list[str], list[str]]:
    """``(problems, warnings)``: declared operation capabilities none of whose methods is
    overridden (every check of it would report the port unsupported), and overridden operations
    whose capability is not declared (their checks are skipped: right for an adapter that
    inherits operations it does not vouch for, a slip otherwise)."""
    implemented = caps.implemented_operations(adapter)
    problems, warnings = [], []
    for capability, operations in caps.CAPABILITY_OPERATIONS.items():
        have = [op for op in operations if op in implemented]
        if operations and capability in adapter.capabilities and not have:
            problems.append(f"declares {capability!r} but overrides none of {', '.join(operations)}")
        if capability not in adapter.capabilities and have:
            warnings.append(f"implements {', '.join(have)} but does not declare {capability!r}: "
                            "its checks are skipped")
    return problems, warnings


def probe(check, adapter, reference: Reference | None, profile: str = "ci") -> Probe:
    """Run ``check``'s first runnable case twice on ``adapter`` and judge the adapter's behaviour."""
    found = Probe(check.id)
    mode = plan(check, adapter).mode
    if mode == "none":
        return found
    cases = [c for c in check.cases(profile) if set(c.requires) <= set(adapter.capabilities)]
    if not cases:
        found.notes.append("no case runs with the declared capabilities")
        return found
    case = cases[0]
    noise = None
    if mode == "injected" and reference is not None:
        noise = reference.expected(check, case).aux
    pristine = case.fingerprint()
    recorder = _Recorder(adapter)
    try:
        first = check.compute(recorder, case, noise=noise)
        snapshot = copy.deepcopy(_as_arrays(first))
        second = check.compute(recorder, case, noise=noise)
    except caps.Unsupported as e:
        found.notes.append(f"case {case.case_id}: Unsupported ({e})")
        return found
    except Exception as e:
        found.problems.append(f"case {case.case_id}: raised {type(e).__name__}: {e}")
        return found
    found.operations = sorted(set(recorder.called))
    if case.fingerprint() != pristine:
        found.problems.append(f"case {case.case_id}: the adapter modified its inputs (the harness gives the same "
                              "arrays to every backend; copy before changing them)")
    first, second = _as_arrays(first), _as_arrays(second)
    for name in snapshot:
        if not _equal(first[name], snapshot[name]):
            found.problems.append(f"output {name}: changed when the operation ran again, so it aliases the port's "
                                  "state (return copies, e.g. tensor.detach().cpu().clone().numpy())")
        elif not _equal(second.get(name), snapshot[name]):
            found.problems.append(f"output {name}: two calls on the same inputs disagree (state carried between "
                                  "calls, or an unseeded draw)")
    if reference is not None and mode != "relations":
        try:
            expected = reference.expected(check, case)
        except Exception as e:
            found.notes.append(f"shapes and dtypes not checked: {type(e).__name__}: {e}")
        else:
            found.problems += _shape_dtype_problems(first, expected, getattr(adapter, "widens_bfloat16", False))
    return found


def _shape_dtype_problems(outputs: dict, expected, widens: bool = False) -> list[str]:
    out = []
    for name, want in expected.outputs.items():
        if name not in outputs:
            out.append(f"output {name}: missing (the reference has it)")
            continue
        got = outputs[name]
        if tuple(got.shape) != tuple(np.shape(want)):
            out.append(f"output {name}: shape {tuple(got.shape)}, the reference's is {tuple(np.shape(want))}")
        want_dtype, got_dtype = expected.dtypes.get(name), dtype_name(got)
        accepted = {want_dtype} | ({"float32"} if want_dtype == "bfloat16" and widens else set())
        if want_dtype is not None and got_dtype not in accepted:
            out.append(f"output {name}: dtype {got_dtype}, the reference's is {want_dtype}")
    return out


def _as_arrays(outputs: dict) -> dict:
    return {k: v if isinstance(v, np.ndarray) else np.asarray(v) for k, v in outputs.items()}


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def trainer_problems(adapter) -> list[str]:
    """What keeps the harness from observing a trainer adapter's port (see the module docstring)."""
    from dataclasses import replace

    config = replace(NOISE, lr=0.1)
    try:
        run = Observer(adapter).run(config, 1)
    except caps.Unsupported as e:
        return [f"build() refuses the probe's configuration ({config}): {e}"]
    except Exception as e:
        return [f"one generation on the probe raised {type(e).__name__}: {e}"]
    if all((run.after[0][k] == run.before[0][k]).all() for k in run.before[0]):
        return ["the probe's parameters did not change after a step with lr=0.1: the port must update the module it "
                "was given in place"]
    return []


def main(args) -> int:
    adapter = adapters.resolve(args.backend)
    if is_trainer_adapter(adapter):
        print(f"trainer adapter {adapter.name}: one generation on the probe")
        problems = trainer_problems(adapter)
        for line in problems:
            print(f"  problem: {line}")
        print(f"{len(problems)} problem(s) found" if problems else "no problem found")
        return 1 if problems else 0
    checks = select_checks(args.check)
    live = live_reference([adapter]) if adapter.name != "jax_reference" else adapter
    store = VectorStore(args.vectors)
    reference = Reference(store if store.exists() else None, live) if (live or store.exists()) else None
    print(f"adapter {adapter.name}: capabilities {', '.join(sorted(adapter.capabilities)) or '(none)'}")
    problems, warnings = declarations(adapter)
    for line in problems:
        print(f"  problem: {line}")
    for line in warnings:
        print(f"  warning: {line}")
    for check in checks:
        missing = missing_for(check, adapter)
        found = probe(check, adapter, reference)
        status = "PROBLEM" if found.problems else ("runs" if plan(check, adapter).mode != "none" else "skipped")
        print(f"{check.id:<38} {status}" + (f"  (calls {', '.join(found.operations)})" if found.operations else ""))
        for line in missing:
            print(f"  missing: {line}")
        for line in found.problems:
            print(f"  problem: {line}")
        for line in found.notes:
            print(f"  note: {line}")
        problems += found.problems
    if reference is None:
        print("note: no reference (neither JAX nor golden vectors): shapes and dtypes were not checked")
    print(f"{len(problems)} problem(s) found" if problems else "no problem found")
    return 1 if problems else 0
