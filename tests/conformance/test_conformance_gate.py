"""The gate's rules on synthetic results, and the baseline built from a run."""
from __future__ import annotations

import pytest

from conformance import gate
from conformance.results import CaseResult, CheckResult


def result(check_id, status, backend="port", max_ulp=0.0):
    case = CaseResult("c", status, "reference", max_ulp=max_ulp, messages=[] if status == "pass" else ["boom"])
    return CheckResult(check_id, backend, "Comp", "high", status, "reference", [case],
                       note="why" if status == "skip" else "")


def baseline(**entries):
    return {"format_version": 1, "profile": "ci", "backends": {"port": entries}}


def rules(report):
    return sorted((v.check_id, v.rule) for v in report.violations)


def test_matching_run_passes():
    report = gate.evaluate([result("a.b", "pass")], baseline(**{"a.b": {"status": "pass"}}))
    assert report.ok and report.judged_backends == ["port"]


@pytest.mark.parametrize("status", ["fail", "error"])
def test_pass_to_fail_or_error_is_a_regression(status):
    report = gate.evaluate([result("a.b", status)], baseline(**{"a.b": {"status": "pass"}}))
    assert rules(report) == [("a.b", "regression")]


def test_pass_to_skip_is_a_violation():
    report = gate.evaluate([result("a.b", "skip")], baseline(**{"a.b": {"status": "pass"}}))
    assert rules(report) == [("a.b", "skipped")]


def test_disappeared_check_is_a_violation_unless_outside_the_selection():
    doc = baseline(**{"a.b": {"status": "pass"}, "a.c": {"status": "pass"}})
    assert rules(gate.evaluate([result("a.b", "pass")], doc)) == [("a.c", "disappeared")]
    assert gate.evaluate([result("a.b", "pass")], doc, only={"a.b"}).ok


def test_known_difference_that_starts_passing_fails_until_baseline_update():
    doc = baseline(**{"a.b": {"status": "known_difference", "reason": "r", "allowed_ulp": 10.0}})
    assert rules(gate.evaluate([result("a.b", "pass")], doc)) == [("a.b", "fixed")]
    assert gate.evaluate([result("a.b", "fail", max_ulp=10.0)], doc).ok


def test_known_difference_exceeding_its_allowed_error_fails():
    doc = baseline(**{"a.b": {"status": "known_difference", "reason": "r", "allowed_ulp": 10.0}})
    assert rules(gate.evaluate([result("a.b", "fail", max_ulp=11.0)], doc)) == [("a.b", "grew")]


def test_known_difference_needs_a_reason():
    doc = baseline(**{"a.b": {"status": "known_difference", "reason": f"{gate.UNEXPLAINED}: x", "allowed_ulp": 1.0}})
    assert rules(gate.evaluate([result("a.b", "fail", max_ulp=1.0)], doc)) == [("a.b", "unexplained")]


def test_new_check_fails_only_when_it_fails():
    doc = baseline(**{"a.b": {"status": "pass"}})
    report = gate.evaluate([result("a.b", "pass"), result("a.new", "pass"), result("a.bad", "fail")], doc)
    assert rules(report) == [("a.bad", "new_failure")]
    assert any("a.new" in n for n in report.notes)


def test_backend_without_baseline_must_pass_everything_and_alias_borrows_one():
    doc = baseline(**{"a.b": {"status": "known_difference", "reason": "r", "allowed_ulp": 5.0}})
    broken = [result("a.b", "fail", backend="other", max_ulp=1.0)]
    assert rules(gate.evaluate(broken, doc)) == [("a.b", "new_failure")]
    assert gate.evaluate(broken, doc, aliases={"other": "port"}).ok


def test_backends_that_did_not_run_are_not_judged():
    doc = {"format_version": 1, "profile": "ci", "backends": {"port": {"a.b": {"status": "pass"}},
                                                              "cuda": {"a.b": {"status": "pass"}}}}
    report = gate.evaluate([result("a.b", "pass")], doc)
    assert report.ok and report.judged_backends == ["port"]


def test_make_baseline_records_statuses_reasons_and_round_trips(tmp_path):
    results = [result("a.b", "pass"), result("a.c", "fail", max_ulp=7.0), result("a.d", "skip"),
               result("a.e", "fail", max_ulp=2.0)]
    doc = gate.make_baseline(results, {"backends": {}}, {"a.c": "reduction order"}, "ci")
    entries = doc["backends"]["port"]
    assert entries["a.b"]["status"] == "pass" and entries["a.d"]["status"] == "skip"
    assert entries["a.c"] == {"status": "known_difference", "reason": "reduction order", "allowed_ulp": 7.0}
    assert entries["a.e"]["reason"].startswith(gate.UNEXPLAINED)
    path = tmp_path / "baseline.json"
    gate.write_baseline(doc, path)
    again = gate.load_baseline(path)
    assert rules(gate.evaluate(results, again)) == [("a.e", "unexplained")]


def test_make_baseline_keeps_backends_that_did_not_run():
    previous = {"backends": {"cuda": {"a.b": {"status": "pass"}}}}
    doc = gate.make_baseline([result("a.b", "pass")], previous, {}, "ci")
    assert set(doc["backends"]) == {"cuda", "port"}


def test_committed_baseline_is_valid_and_has_reasons():
    doc = gate.load_baseline()
    assert doc["backends"], "conformance/baseline.json is empty"
    unexplained = [(b, c) for b, checks in doc["backends"].items() for c, e in checks.items()
                   if e["status"] == "known_difference" and e["reason"].startswith(gate.UNEXPLAINED)]
    assert not unexplained
