"""``reports/ports/<distribution>-<version>.md`` and ``.json``: one port's certification.

The summary table is the one ``reports/COMPATIBILITY.md`` shows (built by the same
``component_rows``), followed by one section per failing check with its smallest reproducing case
and a table of every check with how it was checked.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from .. import environment
from ..adapters import base as caps
from ..adapters.trainer import is_trainer_adapter
from ..report.markdown import component_rows
from ..report.terminal import fmt_ulp
from . import repro
from .routed import routes_reference_draws

FORMAT = "eggroll-port-certification"
HOW = {"reference": "values vs reference", "injected": "reference noise injected", "relations": "laws only",
       "hypothesis": "hypothesis", "none": "not run", "observed": "exact, on the noise observed through the trainer",
       "statistical": "statistical test on the observed noise or training runs"}
ICON = {"pass": "✅", "fail": "❌", "error": "❌", "skip": "⏭"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return out


def _how(row) -> str:
    if row.result.status == "skip":
        return "not run"
    if row.laws is not None:
        return f"values on routed draws; own-RNG laws: {row.laws.status}"
    return HOW.get(row.result.mode, row.result.mode)


def _injection_text(adapter) -> str:
    if is_trainer_adapter(adapter):
        return ("none: the port is driven through its trainer only (a TrainerAdapter); each member's perturbation "
                "is observed exactly on probe modules, laws that need no shared RNG are checked exactly on it and "
                "distributions by statistical tests whose power each row states")
    parts = []
    if adapter.supports(caps.INJECT_NOISE):
        parts.append("injected into the update checks")
    if routes_reference_draws(adapter):
        parts.append("its normal draws routed into the port's generator, so the noise checks compare values")
    elif adapter.supports(caps.JAX_RNG):
        parts.append("not needed: the port reproduces JAX's PRNG")
    elif adapter.supports(caps.NOISE):
        parts.append("not injectable into the port's draws, so the noise checks verify laws only")
    else:
        parts.append("the port's noise cannot be reached by the adapter, so no noise check ran (see its notes)")
    return "; ".join(parts)


def _reference_text(reference) -> str:
    parts = []
    if reference.store is not None:
        parts.append(f"golden vectors `{reference.store.directory.name}`")
    if reference.live is not None:
        info = reference.live.info()
        parts.append(f"live `{info.name}` ({info.version})")
    return " and ".join(parts) or "none"


def _trainer_reference_text() -> str:
    return ("upstream's shaping, estimator and solver formulas evaluated in float64 on the observed noise; the "
            "training runs on `jax_reference` (`conformance/trainer_checks/trajectory.py`)")


def _install_text(cert, spec) -> str:
    source = getattr(cert, "source", None)
    if source is not None:
        commit = f"commit `{source.commit}`" + (" with uncommitted changes" if source.dirty else "") \
            if source.commit else "not a git checkout"
        return f"imported from the checkout `{source.path}` ({commit})"
    if cert.install is None:
        return "not installed by this run (plug-in adapter or --no-install)"
    if not cert.install.command:
        return f"`{cert.install.requirement}` {cert.install.detail}"
    flags = f" ({spec.flags_reason})" if spec is not None and spec.flags_reason else ""
    return f"`python {' '.join(cert.install.command[1:])}`{flags}"


def build(cert, spec) -> dict:
    info = cert.adapter.info()
    return {
        "format": FORMAT, "format_version": 1, "profile": cert.profile, "environment": environment.environment(),
        "port": {"name": info.name, "version": info.version, "device": info.device, "notes": info.notes,
                 "libraries": dict(info.libraries),
                 "protocol": "trainer" if is_trainer_adapter(cert.adapter) else "functional",
                 "capabilities": sorted(getattr(cert.adapter, "capabilities", ())),
                 "adapter": spec.adapter if spec is not None else None,
                 "install": None if cert.install is None else vars(cert.install),
                 "source": None if getattr(cert, "source", None) is None else vars(cert.source)},
        "reference": _reference_text(cert.reference),
        "summary": [dict(zip(("component", "status", "impact", "backends", "cases", "max_abs_error", "max_ulp"), r))
                    for r in component_rows(SimpleNamespace(results=[r.result for r in cert.rows], baseline={}))],
        "results": [{**r.result.to_json(), "laws": None if r.laws is None else r.laws.to_json()} for r in cert.rows],
        "findings": [f.to_json() for f in cert.findings],
    }


def render(cert, spec) -> str:
    info = cert.adapter.info()
    env = environment.environment()
    v = env["versions"]
    results = [r.result for r in cert.rows]
    reference = _trainer_reference_text() if is_trainer_adapter(cert.adapter) else _reference_text(cert.reference)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error", "skip")}
    lines = [
        f"# {info.name} {info.version}: EGGROLL conformance against the JAX reference",
        "",
        f"Generated by `make certify-ports` (`python -m conformance certify-ports --profile {cert.profile}`) on "
        f"{env['date']}, commit {env['commit']}; regenerate, do not edit.",
        "",
        f"- Port: `{info.name}` {info.version} on {info.device}; install: {_install_text(cert, spec)}",
        f"- Its RNG: {info.notes or 'not described by the adapter'}",
        f"- Reference noise: {_injection_text(cert.adapter)}",
        f"- Versions: python {v['python']}, torch {v['torch']}, jax {v['jax']}, jaxlib {v['jaxlib']}, "
        f"optax {v['optax']}, numpy {v['numpy']}",
        f"- Reference: {reference}; tolerances `conformance/tolerances.py`",
        f"- Checks: {counts['pass']} pass, {counts['fail'] + counts['error']} fail, {counts['skip']} not run",
        "",
        "## Summary",
        "",
    ]
    lines += _table(["Component", "Status", "Impact", "Backends", "Cases", "Max abs error", "Max ULP"],
                    component_rows(SimpleNamespace(results=results, baseline={})))
    lines += ["", "## What differs from upstream", ""]
    lines += [f"- `{f.check_id}` ({f.status}{_values_only(f)}): {f.summary}. {_first_symptom(f)}"
              for f in cert.findings]
    lines += ["" if cert.findings else "Nothing: every check that ran passes.", ""]
    lines += ["## Failing checks, each with its smallest reproducing case", ""]
    for finding in cert.findings:
        lines.append(f"### ❌ `{finding.check_id}`: {finding.summary}")
        lines.append("")
        lines += repro.markdown(finding)
    if not cert.findings:
        lines += ["None: every check that ran passes.", ""]
    lines += ["## Every check", ""]
    lines += _table(["Check", "Component", "Status", "How", "Max ULP", "Note"],
                    [[f"`{r.check.id}`", r.check.component, f"{ICON[r.result.status]} {r.result.status}", _how(r),
                      fmt_ulp(r.result.max_ulp) if r.result.status != "skip" and r.result.mode not in
                      ("observed", "statistical") else "-",
                      _note(r)] for r in cert.rows])
    lines.append("")
    return "\n".join(lines)


def _values_only(finding) -> str:
    if finding.laws_verdict == "pass":
        return "; values only, this check's own laws hold"
    if finding.outputs and all(o.get("rounding_only") for o in finding.outputs) and not finding.laws:
        return "; rounding only"
    return ""


def _first_symptom(finding) -> str:
    if finding.error:
        return f"The port raises `{finding.error}`."
    if finding.laws:
        return f"Broken: {finding.laws[0]}."
    if finding.outputs:
        row = finding.outputs[0]
        tail = " (rounding only)" if row.get("rounding_only") else ""
        return f"`{row['output']}` max abs error {row['max_abs']:.3g}{tail}."
    return ""


def _note(row) -> str:
    if row.result.mode in ("observed", "statistical") and row.result.status != "skip":
        return row.result.note
    if row.result.status == "skip":
        return next((m for c in row.result.cases for m in c.messages), row.result.note)
    skipped = sorted({m for c in row.result.cases if c.status == "skip" for m in c.messages})
    return "; ".join(["some cases not run: " + s for s in skipped][:2])


def _finite(value):
    """JSON has no inf or nan: write them as strings, as ``conformance.json`` does."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def report_stem(cert, spec) -> str:
    """``<name>-<version>``, and ``-<commit>`` (``-dirty`` for uncommitted changes) for a port
    certified from a checkout."""
    info = cert.adapter.info()
    stem = spec.report_stem if spec is not None else f"{info.name}-{info.version}"
    source = getattr(cert, "source", None)
    if source is not None and source.commit:
        stem += f"-{source.commit}" + ("-dirty" if source.dirty else "")
    return stem


def write_port_report(cert, spec, directory: Path) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``.json`` under ``directory`` (see :func:`report_stem`); returns both paths."""
    stem = report_stem(cert, spec)
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / f"{stem}.md", directory / f"{stem}.json"
    md.write_text(render(cert, spec))
    js.write_text(json.dumps(_finite(build(cert, spec)), indent=1, default=str, allow_nan=False) + "\n")
    return md, js
