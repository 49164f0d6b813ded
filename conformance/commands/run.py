"""``run``: every check on every backend, reports written, gate applied (exit 1 on regression).

The run use case: resolve the backends, run every selected check on each against the reference
(golden vectors first, the live JAX reference for cases without one), judge the results against
the committed baseline (the gate), then report: the terminal summary and, unless disabled,
``reports/``. ``certify-ports`` is the same sequence for one third-party port at a time.
"""
from __future__ import annotations

import argparse
import fnmatch
import time
from pathlib import Path

from .. import adapters, environment, gate, llm_flips, parallel, runner
from ..checks import select_checks
from ..golden import VectorStore
from ..reference import reference_for
from ..trainer_checks import TRAINER_REGISTRY, Observer, run_trainer_check
from ..report import claims, plot, port_claims, terminal, verdicts
from ..report.outcome import RunOutcome, write_reports
from ._common import add_run_arguments, parse_aliases

NAME = "run"
HELP = "run the checks, write reports/ and apply the gate (make conformance)"
ROOT = Path(__file__).resolve().parents[2]
TRAINER_LEVEL = "eggroll_torch-trainer-level"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--report-dir", default=None,
                        help="where reports go (default: reports/ when every built-in backend runs; with --backend "
                             "no reports are written unless this is given, so the committed reports stay as they are)")
    parser.add_argument("--no-reports", action="store_true", help="do not write reports")
    parser.add_argument("--no-gate", action="store_true", help="exit 0 even when the gate fails")
    parser.add_argument("--judge-as", action="append", metavar="BACKEND=BASELINE",
                        help="judge BACKEND against another backend's baseline entry (repeatable)")
    parser.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                        help="run the checks in N worker processes (default 1: all in this process; "
                             "make conformance uses 2); the results are the same either way")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expects a whole number >= 1 (worker processes), got {text!r}")
    return int(text)


def main(args) -> int:
    outcome = execute(args.backend, args.profile, args.check, report_dir_for(args), args.vectors, args.baseline,
                      parse_aliases(args.judge_as), args.quiet, args.jobs)
    if args.no_gate:
        return 0
    return 0 if outcome.gate.ok else 1


def report_dir_for(args) -> str | None:
    """Where a run writes reports: ``--report-dir`` if given; else ``reports`` for the full run
    (``make conformance``) and nowhere for a run of chosen backends, which would otherwise
    replace the committed reports with a partial picture."""
    if args.no_reports:
        return None
    if args.report_dir is not None:
        return args.report_dir
    if args.backend:
        if not args.quiet:
            print("note: --backend given without --report-dir: no reports written (reports/ is left as it is)")
        return None
    return "reports"


def execute(backends: list[str] | None = None, profile: str = "ci", check_patterns: list[str] | None = None,
            report_dir: str | Path | None = "reports", vectors_dir: str | Path | None = None,
            baseline_path: str | Path | None = None, aliases: dict | None = None, quiet: bool = False,
            jobs: int = 1) -> RunOutcome:
    """Resolve, run, gate and report (reports written only with ``report_dir``); returns the outcome.

    ``backends`` defaults to every built-in backend that can run here; ``aliases`` maps a backend
    to the baseline entry it is judged against; ``jobs > 1`` runs the checks in that many worker
    processes (:mod:`conformance.parallel`). Raises ``BackendUnavailable`` when no backend can run.
    """
    start = time.perf_counter()
    resolved = adapters.resolve_all(backends)
    if not resolved.adapters:
        raise adapters.BackendUnavailable("no backend can run here: "
                                          + "; ".join(f"{k}: {v}" for k, v in resolved.unavailable.items()))
    store = VectorStore(vectors_dir)
    reference = reference_for(store, resolved.adapters)
    live = reference.live
    checks = select_checks(check_patterns)

    progress = None if quiet else terminal.Progress()
    if jobs > 1:
        results = parallel.run(backends, [a.name for a in resolved.adapters], checks,
                               str(store.directory), profile, jobs,
                               parallel.previous_durations(ROOT / "reports" / "conformance.json"), progress)
    else:
        results = runner.run(resolved.adapters, checks, reference, profile, progress)
    trainer = trainer_level(check_patterns, resolved.unavailable, quiet) if backends is None else []

    baseline = gate.load_baseline(baseline_path)
    verdict = gate.evaluate(results + trainer, baseline, aliases, {c.id for c in checks} if check_patterns else None)

    outcome = RunOutcome(
        profile=profile, environment=environment.environment(),
        vectors_dir=_rel(store.directory) if store.exists() else None,
        live_info=live.info().to_json() | {"capabilities": sorted(live.capabilities)} if live else None,
        backend_infos=[_backend_info(a) for a in resolved.adapters], unavailable=resolved.unavailable,
        checks=checks, results=results, baseline=baseline, gate=verdict)
    outcome.claims = claims.evaluate(reference, results)
    if report_dir is not None:
        outcome.port_claims = port_claims.evaluate(Path(report_dir) / "ports")
        outcome.llm_sampling = llm_flips.load(Path(report_dir))
        outcome.trainer_verdicts = verdicts.evaluate(Path(report_dir) / "ports")
    outcome.series = plot.divergence_series(results)
    if report_dir is not None and any(c.id == "trajectory.mlp_e2e" for c in checks):
        try:
            outcome.series.update(claims.scenario_series(reference, resolved.adapters))
        except Exception as e:  # the picture is optional; a broken backend must not lose the reports
            outcome.gate.notes.append(f"scenario curves not drawn: {type(e).__name__}: {e}")
    outcome.duration_s = time.perf_counter() - start
    if report_dir is not None:
        write_reports(outcome, Path(report_dir))
    if not quiet:
        print()
        print(terminal.summary_table(results))
        if trainer:
            print()
            print(f"{TRAINER_LEVEL} (EggrollTrainer through a TrainerAdapter, judged by the trainer checks):")
            for r in trainer:
                print(f"  {r.check_id:<34} {r.status.upper():<5} {r.note if r.status != 'pass' else ''}".rstrip())
        print()
        print(terminal.gate_text(outcome.gate, resolved.unavailable))
    return outcome


def trainer_level(check_patterns: list[str] | None, unavailable: dict, quiet: bool) -> list:
    """The trainer-level checks (:mod:`conformance.trainer_checks`, those matching
    ``check_patterns``) on ``EggrollTrainer`` through its TrainerAdapter, the path users run,
    engine and bulk-noise kernels included. The gate holds them, with no baseline entry, to
    "pass or skip"; without torch the backend is listed in ``unavailable``."""
    chosen = [c for cid, c in sorted(TRAINER_REGISTRY.items())
              if not check_patterns or any(fnmatch.fnmatch(cid, p) for p in check_patterns)]
    if not chosen:
        return []
    try:
        import torch  # noqa: F401

        from ..adapters.trainer_eggroll_torch import EggrollTorchTrainerLevel

        observer = Observer(EggrollTorchTrainerLevel())
    except ImportError as e:
        unavailable[TRAINER_LEVEL] = f"needs torch: {e}"
        return []
    results = []
    for check in chosen:
        results.append(run_trainer_check(check, observer))
        if not quiet:
            print(f"[{len(results):>2}/{len(chosen)}] {TRAINER_LEVEL}  {check.id:<34} {results[-1].status.upper()}")
    return results


def _backend_info(adapter) -> dict:
    return {**adapter.info().to_json(), "capabilities": sorted(adapter.capabilities)}


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
