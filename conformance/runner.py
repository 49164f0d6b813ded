"""Runs checks on backends: decides how each check applies, compares outputs, collects results."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .adapters import base as caps
from .golden import StaleVector
from .known_differences import stated
from .reference import MissingReference, Reference
from .results import CaseResult, CheckResult, OutputResult, combine
from .tolerances import compare, to_numpy


@dataclass(frozen=True)
class Plan:
    """How a check applies to a backend: a mode from :data:`conformance.results.MODES` and why."""

    mode: str
    reason: str = ""


def plan(check, adapter) -> Plan:
    """``reference`` when outputs are comparable; for a port with its own RNG, ``injected``
    (reference noise fed in) or ``relations`` (laws only); ``none`` (skip) otherwise."""
    missing = set(check.requires) - set(adapter.capabilities)
    if missing:
        return Plan("none", f"not supported by {adapter.name}: {', '.join(sorted(missing))}")
    if not check.rng or adapter.supports(caps.JAX_RNG):
        return Plan("reference")
    if check.injectable and adapter.supports(caps.INJECT_NOISE):
        return Plan("injected", "own RNG: the reference's noise was injected")
    if check.own_rng_relations:
        return Plan("relations", "own RNG: values not comparable, the check's laws were verified")
    return Plan("none", "own RNG: these values depend on JAX's PRNG and cannot be compared")


def _compare_outputs(check, outputs: dict, expected, require_all: bool, adapter, case) -> tuple[list, list[str]]:
    """Every output against the reference's, in the dtype the reference produced; the elements
    a stated known difference explains are counted apart, and the rest held to the tolerance."""
    results, messages = [], []
    known = stated(adapter.name, check.id)
    for name, want in expected.outputs.items():
        if name not in outputs:
            if require_all:
                messages.append(f"output {name} missing")
            continue
        kind = check.kind(name)
        dtype = expected.dtypes.get(name)
        got = outputs[name]
        c = compare(got, want, kind, dtype, widened_bfloat16=adapter.widens_bfloat16)
        message = c.message(name)
        if not c.ok and known is not None and c.worst_index is not None:
            rest = compare(got, want, kind, dtype, widened_bfloat16=adapter.widens_bfloat16,
                           exempt=known.covers(case, name, want, got))
            explained = c.mismatches - rest.mismatches
            if explained:
                c = replace(rest, ok=False, max_abs=c.max_abs, mismatches=c.mismatches)
                others = (f"the others are within {rest.allowed} (max ULP error {rest.max_ulp:g})" if rest.ok
                          else rest.message("the others"))
                message = (f"{name}: {explained} / {c.total} elements differ as the known difference states "
                           f"({known.statement}); {others}")
        results.append(OutputResult(name, c.ok, c.kind, c.dtype, c.allowed_ulp, c.max_ulp, c.max_abs,
                                    c.mismatches, c.total))
        if not c.ok:
            messages.append(message)
    return results, messages


def _summarise(case_id: str, mode: str, outputs: list, messages: list[str], keep: bool) -> CaseResult:
    worst = max(outputs, key=lambda o: (o.max_ulp - o.allowed_ulp, o.max_abs), default=None)
    return CaseResult(case_id, "fail" if messages else "pass", mode,
                      max_abs=max((o.max_abs for o in outputs), default=0.0),
                      max_ulp=max((o.max_ulp for o in outputs), default=0.0),
                      allowed_ulp=worst.allowed_ulp if worst else 0.0, messages=messages[:6],
                      outputs=outputs if keep else [o for o in outputs if not o.ok][:6])


def run_case(check, adapter, case, reference: Reference, mode: str) -> CaseResult:
    """One case on one adapter in ``mode``; never raises (errors become ``error`` results)."""
    missing = set(case.requires) - set(adapter.capabilities)
    if missing:
        return CaseResult(case.case_id, "skip", mode, messages=[f"needs {', '.join(sorted(missing))}"])
    try:
        expected = None if mode == "relations" else reference.expected(check, case)
    except StaleVector as e:
        return CaseResult(case.case_id, "error", mode, messages=[str(e)])
    except MissingReference as e:
        return CaseResult(case.case_id, "skip", mode, messages=[str(e)])
    try:
        noise = expected.aux if mode == "injected" else None
        outputs = check.compute(adapter, case, noise=noise)
    except caps.Unsupported as e:
        return CaseResult(case.case_id, "skip", mode, messages=[str(e)])
    except Exception as e:  # a backend crash is a result, not a harness failure
        frame = traceback.extract_tb(e.__traceback__)[-1]
        return CaseResult(case.case_id, "error", mode,
                          messages=[f"{type(e).__name__}: {e} ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"])
    outputs = {k: v if isinstance(v, np.ndarray) else to_numpy(v) for k, v in outputs.items()}
    compared, messages = ([], []) if expected is None else _compare_outputs(
        check, outputs, expected, mode == "reference", adapter, case)
    try:
        messages += check.relations(outputs, case)
    except Exception as e:
        messages.append(f"laws could not be evaluated: {type(e).__name__}: {e}")
    return _summarise(case.case_id, mode, compared, messages, getattr(check, "keep_output_details", False))


# Generated examples a backend rejects as unsupported, with none accepted yet, after which the
# property is reported as skipped instead of searching on.
_UNSUPPORTED_GIVE_UP = 20


class _NothingSupported(Exception):
    """Every generated example so far was an input the backend cannot express."""


def run_hypothesis(check, adapter, reference: Reference, profile: str) -> CaseResult | None:
    """Differential property: generated cases, adapter vs the live reference. ``None`` if n/a."""
    strategy = check.strategy(profile)
    if strategy is None or not reference.has_live or adapter.name == reference.live.name:
        return None
    from hypothesis import given, reject

    from .hypothesis_support import settings_for

    seen = {"examples": 0, "worst": CaseResult("hypothesis", "pass", "hypothesis"), "failed": None}

    @settings_for(profile)
    @given(strategy)
    def differential(case):
        if not set(case.requires) <= set(adapter.capabilities):
            reject()
        # The backend runs first, so that an input it cannot express costs no reference run.
        crash = None
        try:
            outputs = check.compute(adapter, case)
        except caps.Unsupported as e:  # an input the backend cannot express: not its failure
            seen["unsupported"] = str(e)
            seen["rejected"] = seen.get("rejected", 0) + 1
            if seen["examples"] == 0 and seen["rejected"] >= _UNSUPPORTED_GIVE_UP:
                raise _NothingSupported from e
            reject()
        except Exception as e:  # judged below, once the input is known to be valid
            crash = e
        try:
            expected = reference.compute_live(check, case)
        except Exception:  # input the reference itself rejects: not a valid example
            reject()
        if crash is not None:
            raise crash
        seen["examples"] += 1
        compared, messages = _compare_outputs(check, outputs, expected, True, adapter, case)
        messages += check.relations(outputs, case)
        result = _summarise("hypothesis", "hypothesis", compared, messages, False)
        if result.max_ulp >= seen["worst"].max_ulp:
            seen["worst"] = result
        if messages:
            seen["failed"] = (case, messages)
            raise AssertionError("; ".join(messages))

    try:
        differential()
    except AssertionError:
        pass
    except _NothingSupported:
        return CaseResult(f"hypothesis[{profile}]", "skip", "hypothesis", messages=[seen["unsupported"]])
    except Exception as e:
        if seen["failed"] is None and seen["examples"] == 0 and "unsupported" in seen:
            return CaseResult(f"hypothesis[{profile}]", "skip", "hypothesis", messages=[seen["unsupported"]])
        if seen["failed"] is None:
            return CaseResult(f"hypothesis[{profile}]", "error", "hypothesis", examples=max(seen["examples"], 1),
                              messages=[f"{type(e).__name__}: {e}"])
    worst = seen["worst"]
    if seen["failed"] is not None:
        case, messages = seen["failed"]
        return CaseResult(f"hypothesis[{profile}]", "fail", "hypothesis", worst.max_abs, worst.max_ulp,
                          worst.allowed_ulp, [f"falsifying example {describe(case)}: {m}" for m in messages][:4],
                          examples=max(seen["examples"], 1))
    return CaseResult(f"hypothesis[{profile}]", "pass", "hypothesis", worst.max_abs, worst.max_ulp,
                      worst.allowed_ulp, examples=seen["examples"])


def describe(case) -> str:
    """Short description of a case's inputs (configs and array shapes, not their contents)."""
    parts = []
    for name, value in case.inputs.items():
        if isinstance(value, np.ndarray):
            parts.append(f"{name}={value.dtype}{list(value.shape)}" if value.size > 8 else f"{name}={value.tolist()}")
        elif hasattr(value, "thread_ids"):
            parts.append(f"{name}=(epochs={value.epochs.tolist()}, thread_ids={value.thread_ids.tolist()})")
        elif hasattr(value, "to_json"):
            parts.append(f"{name}={value.to_json()}")
    return "{" + ", ".join(parts) + "}"


def run_check(check, adapter, reference: Reference, profile: str) -> CheckResult:
    start = time.perf_counter()
    p = plan(check, adapter)
    result = CheckResult(check.id, adapter.name, check.component, check.impact, "skip", p.mode, note=p.reason)
    try:
        cases = check.cases(profile) if p.mode != "none" else []
    except caps.Unsupported as e:
        p = Plan("none", str(e))
        result.mode, result.note = p.mode, p.reason
    if p.mode != "none":
        result.cases = [run_case(check, adapter, case, reference, p.mode) for case in cases]
        if p.mode == "reference":
            hyp = run_hypothesis(check, adapter, reference, profile)
            if hyp is not None:
                result.cases.append(hyp)
        result.status = combine(c.status for c in result.cases)
        if result.status == "skip" and not result.note:
            result.note = next((m for c in result.cases for m in c.messages), "")
    result.duration_s = time.perf_counter() - start
    return result


def run(adapters: list, checks: list, reference: Reference, profile: str = "ci",
        progress: Callable[[int, int, CheckResult], None] | None = None) -> list[CheckResult]:
    """Every check on every adapter, in order; ``progress(done, total, result)`` after each."""
    total = len(adapters) * len(checks)
    results = []
    for adapter in adapters:
        for check in checks:
            results.append(run_check(check, adapter, reference, profile))
            if progress is not None:
                progress(len(results), total, results[-1])
    return results
