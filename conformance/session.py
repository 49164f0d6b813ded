"""One conformance run from start to reports: backends, reference, checks, gate, claims, files."""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import adapters as adapter_registry
from . import environment
from . import gate as gate_mod
from .adapters import base as caps
from .checks import REGISTRY
from .checks.base import Case
from .golden import VectorStore
from .reference import Reference
from .report import claims as claims_mod
from .report import json_report, junit, markdown, plot, terminal
from .runner import run as run_checks

ROOT = Path(__file__).resolve().parents[1]
PICTURE = "trajectory_divergence.png"


@dataclass
class RunOutcome:
    profile: str
    environment: dict
    vectors_dir: str | None
    live_info: dict | None
    backend_infos: list
    unavailable: dict
    checks: list
    results: list
    gate: gate_mod.GateReport
    baseline: dict
    claims: list = field(default_factory=list)
    series: dict = field(default_factory=dict)
    duration_s: float = 0.0


def select_checks(patterns: list[str] | None) -> list:
    """Registered checks whose id matches any glob in ``patterns`` (all when empty), in id order."""
    ids = sorted(REGISTRY)
    if patterns:
        unknown = [p for p in patterns if not any(fnmatch.fnmatch(i, p) for i in ids)]
        if unknown:
            raise ValueError(f"--check {unknown} matches no check; see 'python -m conformance list'")
        ids = [i for i in ids if any(fnmatch.fnmatch(i, p) for p in patterns)]
    return [REGISTRY[i] for i in ids]


def backend_info(adapter) -> dict:
    return {**adapter.info().to_json(), "capabilities": sorted(adapter.capabilities)}


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def live_reference(adapters: list):
    """The jax_reference adapter to compute cases without vectors, or ``None`` without JAX."""
    for a in adapters:
        if a.name == "jax_reference":
            return a
    try:
        return adapter_registry.resolve("jax_reference")
    except adapter_registry.BackendUnavailable:
        return None


# Runs that follow the claims document literally (computed by eggroll_torch when it ran).
SCENARIOS = {
    "claims doc: noise_reuse=0 redraws every epoch": {"noise_reuse": 1},
    "claims doc: torch AdamW (weight_decay=1e-2)": {"solver_wd": 1e-2},
}


def scenario_series(reference: Reference, adapters: list) -> dict[str, np.ndarray]:
    """Divergence from the reference trajectory of runs that follow the claims document literally."""
    from dataclasses import replace

    from .spec import SolverSpec

    check = REGISTRY["trajectory.mlp_e2e"]
    case = next(c for c in check.cases("ci") if c.case_id == "upstream-example")
    runner = next((a for a in adapters if a.supports(caps.TRAJECTORY) and a.supports(caps.JAX_RNG)
                   and a.name.startswith("eggroll_torch")), reference.live)
    if runner is None:
        return {}
    want = reference.expected(check, case).outputs
    out = {}
    for label, change in SCENARIOS.items():
        spec = case["spec"]
        if "noise_reuse" in change:
            spec = replace(spec, noise_reuse=change["noise_reuse"])
        if "solver_wd" in change:
            spec = replace(spec, solver=SolverSpec.make("adamw", b1=0.9, b2=0.999, weight_decay=change["solver_wd"]))
        got = check.compute(runner, Case(label, {"spec": spec}))
        per_epoch = {}
        for name, value in got.items():
            if name.startswith("epoch"):
                e = int(name[5:7])
                diff = float(np.abs(np.asarray(value, np.float64) - np.asarray(want[name], np.float64)).max())
                per_epoch[e] = max(per_epoch.get(e, 0.0), diff)
        out[label] = np.array([per_epoch[e] for e in sorted(per_epoch)])
    return out


def execute(backends: list[str] | None = None, profile: str = "ci", check_patterns: list[str] | None = None,
            report_dir: str | Path | None = "reports", vectors_dir: str | Path | None = None,
            baseline_path: str | Path | None = None, aliases: dict | None = None, quiet: bool = False) -> RunOutcome:
    """Run the harness and (with ``report_dir``) write every report; returns the outcome."""
    start = time.perf_counter()
    resolved = adapter_registry.resolve_all(backends)
    if not resolved.adapters:
        raise RuntimeError("no backend can run here: " + "; ".join(f"{k}: {v}" for k, v in resolved.unavailable.items()))
    store = VectorStore(vectors_dir)
    live = live_reference(resolved.adapters)
    reference = Reference(store if store.exists() else None, live)
    checks = select_checks(check_patterns)
    progress = None if quiet else terminal.Progress()
    results = run_checks(resolved.adapters, checks, reference, profile, progress)
    baseline = gate_mod.load_baseline(baseline_path)
    outcome = RunOutcome(
        profile=profile, environment=environment.environment(),
        vectors_dir=_rel(store.directory) if store.exists() else None,
        live_info=live.info().to_json() | {"capabilities": sorted(live.capabilities)} if live else None,
        backend_infos=[backend_info(a) for a in resolved.adapters], unavailable=resolved.unavailable,
        checks=checks, results=results, baseline=baseline,
        gate=gate_mod.evaluate(results, baseline, aliases, {c.id for c in checks} if check_patterns else None))
    outcome.claims = claims_mod.evaluate(reference, results)
    outcome.series = plot.divergence_series(results)
    if report_dir is not None and any(c.id == "trajectory.mlp_e2e" for c in checks):
        try:
            outcome.series.update(scenario_series(reference, resolved.adapters))
        except Exception as e:  # the picture is optional; a broken backend must not lose the reports
            outcome.gate.notes.append(f"scenario curves not drawn: {type(e).__name__}: {e}")
    outcome.duration_s = time.perf_counter() - start
    if report_dir is not None:
        write_reports(outcome, Path(report_dir))
    if not quiet:
        print()
        print(terminal.summary_table(results))
        print()
        print(terminal.gate_text(outcome.gate, resolved.unavailable))
    return outcome


def write_reports(outcome: RunOutcome, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    picture = None
    if outcome.series:
        plot.plot_divergence(outcome.series, directory / PICTURE,
                             "End-to-end MLP example: parameter divergence from the JAX reference")
        picture = PICTURE
    (directory / "COMPATIBILITY.md").write_text(markdown.render(outcome, picture))
    json_report.write(json_report.build(outcome), directory / "conformance.json")
    junit.write(outcome.results, directory / "junit.xml")
