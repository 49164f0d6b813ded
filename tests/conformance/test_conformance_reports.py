"""A real run end to end: progress, reports written and schema-valid, exit codes, plug-in errors."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from conformance import adapters, cli
from conformance.checks import select_checks
from conformance.commands.run import execute
from conformance.report import json_report
from conformance.report.claims import CLAIMS, SCENARIOS
from conformance.report.outcome import PICTURE


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    run = execute(["eggroll_torch"], check_patterns=["normalization.*", "trajectory.*", "signs.*"],
                  report_dir=out, quiet=True)
    return run, out


def test_reports_are_written_and_valid(outcome):
    run, out = outcome
    assert run.gate.ok, [str(v) for v in run.gate.violations]
    doc = json.loads((out / "conformance.json").read_text())
    json_report.validate(doc)
    assert {r["check_id"] for r in doc["results"]} == {c.id for c in run.checks}
    suites = ET.parse(out / "junit.xml").getroot()
    assert int(suites[0].get("tests")) == len(run.checks)
    assert (out / PICTURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compatibility_md_has_the_claims_document_shape(outcome):
    _, out = outcome
    text = (out / "COMPATIBILITY.md").read_text()
    for needle in ("| Component | Status | Impact | Backends | Cases | Max abs error | Max ULP |",
                   "## Known differences", "## Claims vs measured", "torch 2.", "jaxlib", "optax", "Device:",
                   "trajectory_divergence.png"):
        assert needle in text, needle
    assert sum(line.startswith("| ") for line in text.split("## Claims vs measured")[1].split("##")[0].splitlines()) \
        == len(CLAIMS) + 1


def test_trajectory_divergence_series_cover_every_epoch(outcome):
    run, _ = outcome
    assert len(run.series["eggroll_torch"]) == 11
    for label in SCENARIOS:
        assert run.series[label][-1] > 1e-3, f"{label} should visibly diverge from the reference"


def test_cli_lists_checks_and_commands(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "trajectory.mlp_e2e" in out and "backend eggroll_torch: available" in out
    assert {"run", "vectors", "baseline", "list"} <= set(cli.command_modules())


def test_unknown_check_pattern_is_a_clear_error():
    with pytest.raises(ValueError, match="matches no check"):
        select_checks(["nosuch.*"])


@pytest.mark.parametrize("spec, error, match", [
    ("no_colon_here", adapters.AdapterError, "package.module:Name"),
    ("conformance.spec:NoSuchThing", adapters.AdapterError, "has no 'NoSuchThing'"),
    ("conformance.spec:SolverSpec", adapters.AdapterError, "not a conformance Adapter"),
    ("no_such_package.mod:Adapter", adapters.BackendUnavailable, "cannot import"),
])
def test_plugin_specs_fail_with_a_clear_message(spec, error, match):
    with pytest.raises(error, match=match):
        adapters.resolve(spec)
