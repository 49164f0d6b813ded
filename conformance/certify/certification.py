"""One port's certification: every check run on it, each failing check reduced to a repro case.

:func:`run` runs the selected checks on the port's adapter; :func:`findings` is this use case's
verdict: each failing or crashing row with its smallest reproducing case. The reference is
the live JAX reference when JAX is installed, else the golden vectors (:func:`reference_for_ports`).

How each check reaches a port is the harness's rule (``conformance.runner.plan``): shared inputs
compared with the reference; the reference's noise injected into the update; laws only for noise
drawn by the port's own RNG. An adapter that routes the reference's Gaussian draws into the port's
generator (``routes_reference_draws``) additionally has its noise checks compared value for value;
that row then shows both verdicts (laws on the port's own view, values on the routed draws).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..adapters import base as caps
from ..adapters.trainer import is_trainer_adapter
from ..checks.base import Check
from ..golden import VectorStore
from ..reference import Reference, live_reference
from ..results import CheckResult, combine
from ..runner import run_check
from ..trainer_checks import Observer, run_trainer_check
from . import repro
from .catalog import Install, Source
from .routed import compared_view, routes_reference_draws

KEYS_COMPONENT_PREFIX = "keys."


@dataclass
class Row:
    """One check on one port: its verdict, the own-RNG laws verdict it replaced, and the adapter used."""

    check: Check
    result: CheckResult
    laws: CheckResult | None = None
    adapter: caps.Adapter | None = None


@dataclass
class Certification:
    """Everything one port's report shows: its rows, the repro of each failing row, how it got installed."""

    adapter: caps.Adapter
    rows: list[Row]
    findings: list[repro.Repro]
    install: Install | None
    profile: str
    reference: Reference
    source: Source | None = None


def reference_for_ports(vectors_dir: str | None = None) -> Reference:
    """The live JAX reference when JAX is installed, else the golden vectors.

    A certification is a one-off comparison, not the gate: computing the reference live keeps it
    independent of whether the committed vectors are current; vectors serve machines without JAX.
    """
    live = live_reference([])
    store = VectorStore(vectors_dir)
    if live is None and not store.exists():
        raise SystemExit("no reference: JAX is not installed and there are no golden vectors")
    return Reference(None if live is not None else store, live)


def _law_breaking_cases(row: Row) -> set:
    """Ids of the row's cases that break the check's own laws (on the port's own RNG if it has one)."""
    if row.laws is not None:
        return {c.case_id for c in row.laws.cases if c.status == "fail"}
    return {c.case_id for c in row.result.cases if any(" not close (" not in m for m in c.messages)}


def _laws_verdict(row: Row, finding) -> str:
    """Whether the check's own laws hold: ``pass`` / ``fail``, or ``""`` when it states none."""
    if row.laws is not None:
        return row.laws.status if row.laws.mode == "relations" and row.laws.status in ("pass", "fail") else ""
    if type(row.check).relations is Check.relations or finding.status == "error":
        return ""
    return "fail" if finding.laws else "pass"


def _unsupported_is_skip(result):
    """A hypothesis example that reaches an operation the port lacks (``Unsupported``) is a skip.

    The runner turns any exception inside a hypothesis example into an error; for a port that
    simply has no such operation (``do_Tmm``, group normalization) that would read as a crash.
    """
    for case in result.cases:
        if case.mode == "hypothesis" and case.status == "error" and \
                all(m.startswith(f"{caps.Unsupported.__name__}:") for m in case.messages):
            case.status = "skip"
    result.status = combine(c.status for c in result.cases) if result.cases else result.status
    if result.status == "skip" and not result.note:
        result.note = next((m for c in result.cases for m in c.messages), "")
    return result


def run(adapter, checks: list, reference: Reference, profile: str = "ci", progress=None) -> list[Row]:
    """Every check on ``adapter``, in order; ``progress(row)`` after each.

    When the adapter routes the reference's draws, a noise check that depends on the RNG is
    compared value for value on the routed view and its own-RNG laws verdict is kept as ``laws``.
    """
    view = compared_view(adapter) if routes_reference_draws(adapter) else None
    rows = []
    for check in checks:
        own = _unsupported_is_skip(run_check(check, adapter, reference, profile))
        row = Row(check, own, adapter=adapter)
        if view is not None and check.rng and not check.injectable:
            routed = _unsupported_is_skip(run_check(check, view, reference, profile))
            row = Row(check, routed, laws=own, adapter=view)
        if check.id.startswith(KEYS_COMPONENT_PREFIX) and row.result.status == "skip":
            row.result.note = f"own RNG, not comparable ({adapter.info().notes or 'the port derives no JAX keys'})"
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def findings(rows: list[Row], selector: str, reference: Reference, profile: str = "ci") -> list[repro.Repro]:
    """A repro for each failing or crashing row: its smallest failing case run again and described.

    ``selector`` is the ``certify-ports`` argument that picks this port again (``--port NAME`` or
    ``--backend module:Class``); each repro's command is built from it. A row whose only failures
    are hypothesis examples gets a repro without a case.
    """
    out = []
    for row in rows:
        if row.result.status not in ("fail", "error"):
            continue
        case = repro.smallest_failing(row.check, row.result, profile, _law_breaking_cases(row))
        command = f"python -m conformance certify-ports {selector} --check {row.check.id}"
        if case is None:
            out.append(repro.Repro(row.check.id, row.check.summary, row.result.status, "hypothesis",
                                   "hypothesis", {}, laws=row.result.messages[:4], command=command))
            continue
        mode = next(c.mode for c in row.result.cases if c.case_id == case.case_id)
        finding = repro.build(row.check, row.adapter, reference, case, mode, command)
        finding.laws_verdict = _laws_verdict(row, finding)
        out.append(finding)
    return out


def run_trainer(adapter, checks: list, progress=None) -> list[Row]:
    """Every trainer check (:mod:`conformance.trainer_checks`) on a trainer-level ``adapter``,
    sharing one observer so that checks of the same configuration share its runs."""
    observer = Observer(adapter)
    rows = []
    for check in checks:
        rows.append(Row(check, run_trainer_check(check, observer), adapter=adapter))
        if progress is not None:
            progress(rows[-1])
    return rows


def trainer_findings(rows: list[Row], selector: str) -> list[repro.Repro]:
    """A finding per failing trainer row: its first failing case's configuration and what broke."""
    out = []
    for row in rows:
        if row.result.status not in ("fail", "error"):
            continue
        failing = next(c for c in row.result.cases if c.status in ("fail", "error"))
        config = next(c.config for c in row.check.cases() if c.case_id == failing.case_id)
        command = f"python -m conformance certify-ports {selector} --check {row.check.id}"
        error = failing.messages[0] if failing.status == "error" else ""
        out.append(repro.Repro(row.check.id, row.check.summary, row.result.status, failing.case_id, row.check.mode,
                               {"config": vars(config)}, laws=[] if error else failing.messages, error=error,
                               command=command))
    return out


def certify(adapter, checks: list, reference: Reference, selector: str, profile: str = "ci", progress=None):
    """``(rows, findings)`` of one port, by the protocol its adapter speaks."""
    if is_trainer_adapter(adapter):
        rows = run_trainer(adapter, checks, progress)
        return rows, trainer_findings(rows, selector)
    rows = run(adapter, checks, reference, profile, progress)
    return rows, findings(rows, selector, reference, profile)
