"""The catalog of deliberately broken backends: each is caught by the check that names its bug."""
from __future__ import annotations

import numpy as np
import pytest

from broken import CATALOG
from broken.catalog import AdamEpsKeras, SgdInFloat64, UpdateLeftInFloat32
from conformance import cli, environment, gate
from conformance.bugs import BUGS
from conformance.checks import REGISTRY
from conformance.runner import run_check
from conformance.tolerances import TOLERANCES, ulp


def test_catalog_has_at_least_15_distinct_bugs_each_named_by_a_registered_check():
    assert len(CATALOG) >= 15
    assert len({m.bug for m in CATALOG}) == len(CATALOG)
    unknown = [m.__name__ for m in CATALOG if m.flagged_by not in REGISTRY]
    assert not unknown


def test_the_catalog_implements_exactly_the_bugs_the_vectors_name():
    assert {m.__name__ for m in CATALOG} == set(BUGS)
    for m in CATALOG:
        check = REGISTRY[m.flagged_by]
        assert m.flag is None or m.flag in check.branches, f"{m.__name__}: {m.flag} is not a branch of {check.id}"


@pytest.mark.parametrize("mutant", [m for m in CATALOG if m.flag], ids=lambda m: m.__name__)
def test_a_branch_bug_is_exposed_by_exactly_the_cases_of_its_branch(mutant, vector_reference):
    """Without the case of its branch the check would pass the bug: the case list must hit it."""
    broken = mutant()
    check = REGISTRY[broken.flagged_by]
    r = run_check(check, broken, vector_reference, "ci")
    flags = {c.case_id: check.case_flags(c) for c in check.cases("ci")}
    failing = {c.case_id for c in r.cases if c.status == "fail"}
    assert failing and all(broken.flag in flags[c] for c in failing), (failing, flags)


@pytest.mark.parametrize("mutant", CATALOG, ids=lambda m: m.__name__)
def test_named_check_flags_the_bug_and_the_gate_fails(mutant, vector_reference, monkeypatch):
    broken = mutant()
    check = REGISTRY[broken.flagged_by]
    r = run_check(check, broken, vector_reference, "ci")
    status = "pass" if broken.caught_as == "drifted" else "fail"
    assert r.status == status, f"{broken.flagged_by} did not flag '{broken.bug}': {r.status} {r.note} {r.messages[:1]}"
    baseline = gate.load_baseline()
    if broken.caught_as == "drifted":
        # The ratchet judges drift only on the host class the baseline was recorded on.
        monkeypatch.setattr(environment, "host_fingerprint", lambda backend: baseline["hosts"]["eggroll_torch"])
    report = gate.evaluate([r], baseline, aliases={broken.name: "eggroll_torch"}, only={check.id})
    assert [(v.check_id, v.rule) for v in report.violations] == [(check.id, broken.caught_as)]


def _outputs(mutant, check, reference):
    """``(expected, got)`` of every ci case of ``check`` on ``mutant``."""
    for case in check.cases("ci"):
        yield reference.expected(check, case), check.compute(mutant, case)


def test_a_bfloat16_update_left_in_float32_is_caught_by_its_dtype_alone(vector_reference):
    broken = UpdateLeftInFloat32()
    check = REGISTRY[broken.flagged_by]
    seen = 0
    for expected, got in _outputs(broken, check, vector_reference):
        for name, want in expected.outputs.items():
            if expected.dtypes[name] == "bfloat16":
                assert got[name].dtype == np.float32
                np.testing.assert_array_equal(got[name], want.astype(np.float32))
                seen += 1
    assert seen >= 4
    r = run_check(check, broken, vector_reference, "ci")
    assert r.status == "fail" and "dtype float32, expected bfloat16" in r.messages[0]


def test_a_drift_within_the_tolerance_is_caught_by_the_ratchet_with_both_values(vector_reference):
    broken = SgdInFloat64()
    check = REGISTRY[broken.flagged_by]
    r = run_check(check, broken, vector_reference, "ci")
    assert r.status == "pass" and 0 < r.max_ulp <= r.allowed_ulp
    assert gate.load_baseline()["backends"]["eggroll_torch"][check.id]["max_ulp"] == 0
    # Held to the exact ratchet of the host class the baseline was recorded on, wherever this runs.
    doc = {**gate.load_baseline(), "hosts": {"eggroll_torch": environment.host_fingerprint(broken.name)}}
    report = gate.evaluate([r], doc, aliases={broken.name: "eggroll_torch"}, only={check.id})
    [violation] = report.violations
    assert f"max ULP error {r.max_ulp:g} > 0 allowed by the 0 recorded in the baseline" in violation.message
    assert "python -m conformance baseline" in violation.message


def test_a_small_entry_error_hides_under_a_tolerance_scaled_by_the_largest_entry(vector_reference):
    broken = AdamEpsKeras()
    check = REGISTRY[broken.flagged_by]
    for expected, got in _outputs(broken, check, vector_reference):
        for name, want in expected.outputs.items():
            e = np.asarray(want, np.float64)
            allowed = TOLERANCES[check.kind(name)][expected.dtypes[name]] * ulp(np.abs(e).max(), expected.dtypes[name])
            assert np.abs(np.asarray(got[name], np.float64) - e).max() <= allowed, name
    r = run_check(check, broken, vector_reference, "ci")
    assert r.status == "fail" and r.max_ulp > r.allowed_ulp


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
    results = [run_check(c, broken, vector_reference, "ci") for c in REGISTRY.values()]
    report = gate.evaluate(results, gate.load_baseline(), aliases={broken.name: "eggroll_torch"})
    assert (broken.flagged_by, broken.caught_as) in {(v.check_id, v.rule) for v in report.violations}
