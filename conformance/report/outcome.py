"""One ``run``'s outcome: everything its reports show, and writing them to a directory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..gate import GateReport
from . import json_report, junit, markdown, plot

PICTURE = "trajectory_divergence.png"


@dataclass
class RunOutcome:
    """What a run measured and decided: its backends (ran and unavailable), checks, results, the
    gate's verdict against ``baseline``, the claims' verdicts, the ports' trainer-level verdicts
    against their hand-written ones and the divergence series to draw."""

    profile: str
    environment: dict
    vectors_dir: str | None
    live_info: dict | None
    backend_infos: list
    unavailable: dict
    checks: list
    results: list
    gate: GateReport
    baseline: dict
    claims: list = field(default_factory=list)
    port_claims: object = None
    llm_sampling: dict | None = None
    trainer_verdicts: list = field(default_factory=list)
    series: dict = field(default_factory=dict)
    duration_s: float = 0.0


def write_reports(outcome: RunOutcome, directory: Path) -> None:
    """``COMPATIBILITY.md``, ``conformance.json`` and ``junit.xml`` under ``directory``, and the
    divergence picture (:data:`PICTURE`) when the outcome has series to draw."""
    directory.mkdir(parents=True, exist_ok=True)
    picture = None
    if outcome.series:
        plot.plot_divergence(outcome.series, directory / PICTURE,
                             "End-to-end MLP example: parameter divergence from the JAX reference")
        picture = PICTURE
    (directory / "COMPATIBILITY.md").write_text(markdown.render(outcome, picture))
    json_report.write(json_report.build(outcome), directory / "conformance.json")
    junit.write(outcome.results, directory / "junit.xml")
