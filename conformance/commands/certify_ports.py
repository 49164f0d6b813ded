"""``certify-ports``: install published PyTorch ports on demand and certify each (make certify-ports).

The certify-ports use case, for one port at a time: resolve (install the catalog's pinned version
with ``pip install --no-deps`` unless it is there, or import it from a local checkout given with
``--port-src``, then load its adapter; or load ``--backend SPEC`` without installing anything),
run every check on it (:func:`conformance.certify.certification.run`), judge (each failing check
reduced to its smallest reproducing case, :func:`~conformance.certify.certification.findings`)
and report (``reports/ports/<name>-<version>.md`` and ``.json``; ``<name>-<version>-<commit>``
for a port certified from a git checkout, whose commit the report records).

Exit status, so that a port can gate its own CI on its certification:

- 0: every check that ran passed on every port certified;
- 1: a check failed or crashed on some port (``--report-only``: 0, the reports are the result);
- 2: a port could not be installed, imported or loaded, or the command was used wrongly.

Nothing here runs in ``make test`` or the default CI job.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from importlib import metadata
from pathlib import Path

from .. import adapters
from ..certify import catalog, certification
from ..certify.certification import Certification, Row
from ..certify.report import write_port_report
from ..adapters.trainer import is_trainer_adapter
from ..checks import REGISTRY, select_checks
from ..trainer_checks import TRAINER_REGISTRY

NAME = "certify-ports"
HELP = ("install each catalog port (pip --no-deps, pinned; or from --port-src) or load --backend SPEC, run every "
        "check and write reports/ports/<name>-<version>[-<commit>].md and .json; exit 1 when a check fails")
REPORT_DIR = Path("reports") / "ports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", action="append", metavar="NAME",
                        help="catalog port to certify (repeatable; default: all of "
                             + ", ".join(p.requirement for p in catalog.PORTS) + ")")
    parser.add_argument("--backend", action="append", metavar="SPEC",
                        help="certify this adapter (package.module:Adapter or path/to/adapter.py[:Adapter]) instead "
                             "of catalog ports (nothing is installed)")
    parser.add_argument("--port-src", metavar="PATH",
                        help="a local checkout of the port to certify (with one --port, or with --backend): imported "
                             "from there instead of installed; its git commit names the report")
    parser.add_argument("--report-only", action="store_true",
                        help="exit 0 even when checks fail (the reports are the result); 2 still means not certified")
    parser.add_argument("--check", action="append", metavar="GLOB", help="only checks whose id matches (repeatable)")
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci")
    parser.add_argument("--out", default=str(REPORT_DIR), help=f"report directory (default: {REPORT_DIR})")
    parser.add_argument("--vectors", metavar="DIR",
                        help="golden vectors directory, the reference when JAX is not installed (default: current)")
    parser.add_argument("--no-install", action="store_true",
                        help="use catalog ports as they are importable now; never run pip")
    parser.add_argument("--quiet", action="store_true")


def main(args) -> int:
    select_checks(args.check, {**REGISTRY, **TRAINER_REGISTRY})
    reference = certification.reference_for_ports(args.vectors)
    out_dir = Path(args.out)
    not_certified, failing = [], []
    for adapter_spec, selector, spec in _targets(args):
        try:
            adapter, info, install, source = _resolve(adapter_spec, spec, install=not args.no_install,
                                                      port_src=args.port_src)
        except _NotCertified as e:
            name, why = e.args
            print(why, file=sys.stderr)
            not_certified.append(name)
            continue
        checks = _checks_for(adapter, args.check)
        if not args.quiet:
            print(f"certifying {info.name} {info.version} ({len(checks)} checks)", flush=True)
        progress = None if args.quiet else _print_row(info.name)
        rows, findings = certification.certify(adapter, checks, reference, selector, args.profile, progress)
        paths = write_port_report(Certification(adapter, rows, findings, install, args.profile, reference, source),
                                  spec, out_dir)
        bad = sum(r.result.status in ("fail", "error") for r in rows)
        if bad:
            failing.append(info.name)
        print(f"{info.name} {info.version}: {bad} failing checks; report {paths[0]}", flush=True)
    if not_certified:
        return 2
    return 1 if failing and not args.report_only else 0


def _checks_for(adapter, patterns: list[str] | None) -> list:
    """The selected checks of the protocol ``adapter`` speaks (a pattern may name only the other's)."""
    registry = TRAINER_REGISTRY if is_trainer_adapter(adapter) else REGISTRY
    chosen = [p for p in patterns or [] if any(fnmatch.fnmatch(cid, p) for cid in registry)]
    if patterns and not chosen:
        return []
    return select_checks(chosen or None, registry)


def _targets(args) -> list[tuple[str, str, catalog.PortSpec | None]]:
    """``(adapter spec, selector, catalog entry or None)`` of every port to certify."""
    if args.backend:
        if args.port:
            raise SystemExit("--port and --backend cannot be combined")
        if args.port_src and len(args.backend) != 1:
            raise SystemExit("--port-src names one checkout: give one --backend with it")
        return [(b, f"--backend {b}", None) for b in args.backend]
    if args.port_src and (not args.port or len(args.port) != 1):
        raise SystemExit("--port-src names one checkout: give the one --port it is a checkout of")
    specs = [catalog.find(p) for p in args.port] if args.port else list(catalog.PORTS)
    targets = []
    for s in specs:
        if not s.on_pypi and not args.port_src:
            print(f"{s.distribution}: published only as source ({s.source}); certify it from a checkout with "
                  f"--port {s.distribution} --port-src PATH (make certify-ports PORT_SRC=PATH)", file=sys.stderr)
            if args.port:
                raise SystemExit(2)
            continue
        targets.append((s.adapter, f"--port {s.distribution}", s))
    return targets


class _NotCertified(Exception):
    """A port that cannot be certified here: ``args`` are the name to list and the message to print."""


def _resolve(adapter_spec: str, spec: catalog.PortSpec | None, install: bool, port_src: str | None = None):
    """``(adapter, its info, catalog.Install or None, catalog.Source or None)`` of one target;
    raises :class:`_NotCertified`.

    A catalog port is installed first when ``install`` and no ``port_src`` is given; either way
    the version that loads must be the one the catalog pins, since its adapter was written
    against that version.
    """
    installed = source = None
    if port_src is not None:
        try:
            source = catalog.use_source(port_src, spec.import_name if spec is not None else None)
        except ValueError as e:
            raise _NotCertified(port_src, f"--port-src {port_src}: {e}") from e
    elif spec is not None and install:
        installed = catalog.ensure_installed(spec)
        if not installed.ok:
            raise _NotCertified(spec.requirement,
                                f"{spec.requirement}: install failed, not certified:\n{installed.detail}")
    try:
        adapter = adapters.load_plugin(adapter_spec)
        info = adapter.info()
    except (adapters.BackendUnavailable, adapters.AdapterError, metadata.PackageNotFoundError) as e:
        raise _NotCertified(adapter_spec, f"{adapter_spec}: cannot be loaded, not certified: {e}") from e
    if spec is not None and info.version != spec.version:
        where = f"the checkout {port_src} holds" if port_src else "importable now is"
        raise _NotCertified(spec.requirement, f"{spec.distribution}: {where} {info.version}, the catalog pins "
                                              f"{spec.version}" + ("" if port_src else "; rerun without --no-install"))
    return adapter, info, installed, source


def _print_row(port_name: str):
    def show(row: Row) -> None:
        laws = f" (laws: {row.laws.status})" if row.laws is not None else ""
        print(f"  {port_name:<18} {row.check.id:<38} {row.result.status}{laws}", flush=True)

    return show
