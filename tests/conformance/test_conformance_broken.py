"""The catalog of deliberately broken backends: each is caught by the check that names its bug."""
from __future__ import annotations

import pytest

from broken import CATALOG
from conformance import cli, gate
from conformance.checks import REGISTRY
from conformance.runner import run_check


def test_catalog_has_at_least_15_distinct_bugs_each_named_by_a_registered_check():
    assert len(CATALOG) >= 15
    assert len({m.bug for m in CATALOG}) == len(CATALOG)
    unknown = [m.__name__ for m in CATALOG if m.flagged_by not in REGISTRY]
    assert not unknown


@pytest.mark.parametrize("mutant", CATALOG, ids=lambda m: m.__name__)
def test_named_check_flags_the_bug_and_the_gate_fails(mutant, vector_reference):
    broken = mutant()
    check = REGISTRY[broken.flagged_by]
    r = run_check(check, broken, vector_reference, "ci")
    assert r.status == "fail", f"{broken.flagged_by} did not flag '{broken.bug}': {r.status} {r.note}"
    report = gate.evaluate([r], gate.load_baseline(), aliases={broken.name: "eggroll_torch"}, only={check.id})
    assert [(v.check_id, v.rule) for v in report.violations] == [(check.id, "regression")]


@pytest.mark.parametrize("check_id", sorted({m.flagged_by for m in CATALOG}))
def test_named_check_passes_on_the_unbroken_backend(check_id, torch_adapter, vector_reference):
    r = run_check(REGISTRY[check_id], torch_adapter, vector_reference, "ci")
    assert r.status == "pass", r.messages[:3]


def test_broken_backend_as_plugin_fails_the_cli_gate(capsys):
    check = "normalization.population_variance"
    argv = ["run", "--backend", "broken.catalog:DdofOne", "--judge-as", "broken.DdofOne=eggroll_torch",
            "--check", check, "--no-reports", "--quiet"]
    assert cli.main(argv) == 1
    assert cli.main(["run", "--backend", "eggroll_torch", "--check", check, "--no-reports", "--quiet"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("mutant", CATALOG, ids=lambda m: m.__name__)
def test_full_run_of_each_broken_backend_flags_its_named_check(mutant, vector_reference):
    broken = mutant()
    failing = {c.id for c in REGISTRY.values() if run_check(c, broken, vector_reference, "ci").status != "pass"}
    assert broken.flagged_by in failing
