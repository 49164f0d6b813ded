"""Certify third-party PyTorch EGGROLL ports: install on demand, run every check, write a report each.

``python -m conformance certify-ports`` (``make certify-ports``) takes the ports of
:mod:`conformance.certify.catalog`, installs each pinned version into the running
interpreter's environment with ``pip install --no-deps`` (only when that version is not already
there), runs every registered check on its adapter and writes
``reports/ports/<distribution>-<version>.md`` and ``.json``: the component table of
``reports/COMPATIBILITY.md``, then every failing check with its smallest reproducing case.
``--backend package.module:Adapter`` certifies any other port the same way without installing
anything. Nothing here runs in ``make test`` or the default CI job.

How each check reaches a port is the harness's rule (``conformance.runner.plan``): shared inputs
compared with the reference; the reference's noise injected into the update; laws only for noise
drawn by the port's own RNG. An adapter that routes the reference's Gaussian draws into the port's
generator (``routes_reference_draws``) additionally has its noise checks compared value for value;
that row then shows both verdicts (laws on the port's own view, values on the routed draws).
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .. import adapters as adapter_registry
from ..adapters import base as caps
from ..checks.base import Check
from ..golden import VectorStore
from ..reference import Reference
from ..results import CheckResult, combine
from ..runner import run_check
from . import catalog, repro
from .report import write_port_report
from .routed import compared_view, routes_reference_draws

REPORT_DIR = Path("reports") / "ports"
KEYS_COMPONENT_PREFIX = "keys."


@dataclass
class Install:
    """How a port got into the environment: the command run (if any) and what it said."""

    requirement: str
    command: list = field(default_factory=list)
    ok: bool = True
    detail: str = ""


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


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def ensure_installed(spec: catalog.PortSpec, python: str = sys.executable) -> Install:
    """``pip install --no-deps <spec>`` into ``python``'s environment unless that version is there."""
    if installed_version(spec.distribution) == spec.version:
        return Install(spec.requirement, detail="already installed")
    command = [python, "-m", "pip", "install", "--no-deps", "--quiet", *spec.pip_flags, spec.requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        return Install(spec.requirement, command, False, f"cannot run {python}: {e}")
    importlib.invalidate_caches()
    detail = (done.stdout + done.stderr).strip()[-2000:]
    ok = done.returncode == 0 and installed_version(spec.distribution) == spec.version
    return Install(spec.requirement, command, ok, detail or "installed")


def reference_for_ports(vectors_dir: str | None = None) -> Reference:
    """The live JAX reference when JAX is installed, else the golden vectors.

    A certification is a one-off comparison, not the gate: computing the reference live keeps it
    independent of whether the committed vectors are current; vectors serve machines without JAX.
    """
    from ..session import live_reference

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


def certify(adapter, selector: str, checks: list, reference: Reference, profile: str = "ci",
            install: Install | None = None, progress=None) -> Certification:
    """Every check on ``adapter`` (plus value comparisons on routed draws), with repro cases.

    ``selector`` is the ``certify-ports`` argument that picks this port again (``--port NAME`` or
    ``--backend module:Class``); each repro's command is built from it.
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
    findings = []
    for row in rows:
        if row.result.status not in ("fail", "error"):
            continue
        case = repro.smallest_failing(row.check, row.result, profile, _law_breaking_cases(row))
        command = f"python -m conformance certify-ports {selector} --check {row.check.id}"
        if case is None:
            findings.append(repro.Repro(row.check.id, row.check.summary, row.result.status, "hypothesis",
                                        "hypothesis", {}, laws=row.result.messages[:4], command=command))
            continue
        mode = next(c.mode for c in row.result.cases if c.case_id == case.case_id)
        finding = repro.build(row.check, row.adapter, reference, case, mode, command)
        finding.laws_verdict = _laws_verdict(row, finding)
        findings.append(finding)
    return Certification(adapter, rows, findings, install, profile, reference)


def _print_row(port_name: str):
    def show(row: Row) -> None:
        laws = f" (laws: {row.laws.status})" if row.laws is not None else ""
        print(f"  {port_name:<18} {row.check.id:<38} {row.result.status}{laws}", flush=True)

    return show


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", action="append", metavar="NAME",
                        help="catalog port to certify (repeatable; default: all of "
                             + ", ".join(p.requirement for p in catalog.PORTS) + ")")
    parser.add_argument("--backend", action="append", metavar="package.module:Adapter",
                        help="certify this adapter instead of catalog ports (nothing is installed)")
    parser.add_argument("--check", action="append", metavar="GLOB", help="only checks whose id matches (repeatable)")
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci")
    parser.add_argument("--out", default=str(REPORT_DIR), help=f"report directory (default: {REPORT_DIR})")
    parser.add_argument("--vectors", metavar="DIR",
                        help="golden vectors directory, the reference when JAX is not installed (default: current)")
    parser.add_argument("--no-install", action="store_true",
                        help="use catalog ports as they are importable now; never run pip")
    parser.add_argument("--quiet", action="store_true")


def _targets(args) -> list[tuple[str, str, catalog.PortSpec | None]]:
    """``(adapter spec, selector, catalog entry or None)`` of every port to certify."""
    if args.backend:
        if args.port:
            raise SystemExit("--port and --backend cannot be combined")
        return [(b, f"--backend {b}", None) for b in args.backend]
    specs = [catalog.find(p) for p in args.port] if args.port else list(catalog.PORTS)
    return [(s.adapter, f"--port {s.distribution}", s) for s in specs]


def main(args) -> int:
    from ..session import select_checks

    checks = select_checks(args.check)
    reference = reference_for_ports(args.vectors)
    out_dir = Path(args.out)
    failed_installs = []
    for adapter_spec, selector, spec in _targets(args):
        install = None
        if spec is not None and not args.no_install:
            install = ensure_installed(spec)
            if not install.ok:
                print(f"{spec.requirement}: install failed, not certified:\n{install.detail}", file=sys.stderr)
                failed_installs.append(spec.requirement)
                continue
        try:
            adapter = adapter_registry.load_plugin(adapter_spec)
            info = adapter.info()
        except (adapter_registry.BackendUnavailable, metadata.PackageNotFoundError) as e:
            print(f"{adapter_spec}: cannot be loaded, not certified: {e}", file=sys.stderr)
            failed_installs.append(adapter_spec)
            continue
        if spec is not None and info.version != spec.version:
            print(f"{spec.distribution}: {info.version} is importable, the catalog pins {spec.version}; "
                  "rerun without --no-install", file=sys.stderr)
            failed_installs.append(spec.requirement)
            continue
        if not args.quiet:
            print(f"certifying {info.name} {info.version} ({len(checks)} checks)", flush=True)
        cert = certify(adapter, selector, checks, reference, args.profile, install,
                       None if args.quiet else _print_row(info.name))
        paths = write_port_report(cert, spec, out_dir)
        bad = sum(r.result.status in ("fail", "error") for r in cert.rows)
        print(f"{info.name} {info.version}: {bad} failing checks; report {paths[0]}", flush=True)
    return 2 if failed_installs else 0


__all__ = ["Certification", "Install", "Row", "add_arguments", "certify", "ensure_installed", "main"]
