"""``certify-ports``: install published PyTorch ports on demand and certify each (make certify-ports).

The certify-ports use case, for one port at a time: resolve (install the catalog's pinned version
with ``pip install --no-deps`` unless it is there, then load its adapter; or load
``--backend package.module:Adapter`` without installing anything), run every check on it
(:func:`conformance.certify.certification.run`), judge (each failing check reduced to its smallest
reproducing case, :func:`~conformance.certify.certification.findings`) and report
(``reports/ports/<distribution>-<version>.md`` and ``.json``). Failing checks are the report's
content, not an error: the exit status is 2 only when a port could not be installed or loaded.
Nothing here runs in ``make test`` or the default CI job.
"""
from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from .. import adapters
from ..certify import catalog, certification
from ..certify.certification import Certification, Row
from ..certify.report import write_port_report
from ..checks import select_checks

NAME = "certify-ports"
HELP = ("install each catalog port (pip --no-deps, pinned) or load --backend package.module:Adapter, run every "
        "check and write reports/ports/<name>-<version>.md and .json")
REPORT_DIR = Path("reports") / "ports"


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


def main(args) -> int:
    checks = select_checks(args.check)
    reference = certification.reference_for_ports(args.vectors)
    out_dir = Path(args.out)
    not_certified = []
    for adapter_spec, selector, spec in _targets(args):
        try:
            adapter, info, install = _resolve(adapter_spec, spec, install=not args.no_install)
        except _NotCertified as e:
            name, why = e.args
            print(why, file=sys.stderr)
            not_certified.append(name)
            continue
        if not args.quiet:
            print(f"certifying {info.name} {info.version} ({len(checks)} checks)", flush=True)
        progress = None if args.quiet else _print_row(info.name)
        rows = certification.run(adapter, checks, reference, args.profile, progress)
        findings = certification.findings(rows, selector, reference, args.profile)
        paths = write_port_report(Certification(adapter, rows, findings, install, args.profile, reference), spec,
                                  out_dir)
        bad = sum(r.result.status in ("fail", "error") for r in rows)
        print(f"{info.name} {info.version}: {bad} failing checks; report {paths[0]}", flush=True)
    return 2 if not_certified else 0


def _targets(args) -> list[tuple[str, str, catalog.PortSpec | None]]:
    """``(adapter spec, selector, catalog entry or None)`` of every port to certify."""
    if args.backend:
        if args.port:
            raise SystemExit("--port and --backend cannot be combined")
        return [(b, f"--backend {b}", None) for b in args.backend]
    specs = [catalog.find(p) for p in args.port] if args.port else list(catalog.PORTS)
    return [(s.adapter, f"--port {s.distribution}", s) for s in specs]


class _NotCertified(Exception):
    """A port that cannot be certified here: ``args`` are the name to list and the message to print."""


def _resolve(adapter_spec: str, spec: catalog.PortSpec | None, install: bool):
    """``(adapter, its info, catalog.Install or None)`` of one target; raises :class:`_NotCertified`.

    A catalog port is installed first when ``install``; either way the version that loads must be
    the one the catalog pins, since its adapter was written against that version.
    """
    installed = None
    if spec is not None and install:
        installed = catalog.ensure_installed(spec)
        if not installed.ok:
            raise _NotCertified(spec.requirement,
                                f"{spec.requirement}: install failed, not certified:\n{installed.detail}")
    try:
        adapter = adapters.load_plugin(adapter_spec)
        info = adapter.info()
    except (adapters.BackendUnavailable, metadata.PackageNotFoundError) as e:
        raise _NotCertified(adapter_spec, f"{adapter_spec}: cannot be loaded, not certified: {e}") from e
    if spec is not None and info.version != spec.version:
        raise _NotCertified(spec.requirement, f"{spec.distribution}: {info.version} is importable, the catalog pins "
                                              f"{spec.version}; rerun without --no-install")
    return adapter, info, installed


def _print_row(port_name: str):
    def show(row: Row) -> None:
        laws = f" (laws: {row.laws.status})" if row.laws is not None else ""
        print(f"  {port_name:<18} {row.check.id:<38} {row.result.status}{laws}", flush=True)

    return show
