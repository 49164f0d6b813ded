"""The gate's rules on synthetic results, and the baseline built from a run."""
from __future__ import annotations

import numpy as np
import pytest

from conformance import environment, gate
from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.checks import REGISTRY
from conformance.results import CaseResult, CheckResult
from conformance.runner import run_check


def result(check_id, status, backend="port", max_ulp=0.0):
    case = CaseResult("c", status, "reference", max_ulp=max_ulp, messages=[] if status == "pass" else ["boom"])
    return CheckResult(check_id, backend, "Comp", "high", status, "reference", [case],
                       note="why" if status == "skip" else "")


def baseline(host=None, **entries):
    """A baseline for backend ``port`` recorded on ``host`` (default: this host class)."""
    return {"format_version": 1, "profile": "ci", "hosts": {"port": host or environment.host_fingerprint("port")},
            "backends": {"port": entries}}


def rules(report):
    return sorted((v.check_id, v.rule) for v in report.violations)


def test_matching_run_passes():
    report = gate.evaluate([result("a.b", "pass")], baseline(**{"a.b": {"status": "pass"}}))
    assert report.ok and report.judged_backends == ["port"]


@pytest.mark.parametrize("status", ["fail", "error"])
def test_pass_to_fail_or_error_is_a_regression(status):
    report = gate.evaluate([result("a.b", status)], baseline(**{"a.b": {"status": "pass"}}))
    assert rules(report) == [("a.b", "regression")]


def test_a_pass_whose_error_grows_past_the_recorded_one_drifted_even_within_tolerance():
    doc = baseline(**{"a.b": {"status": "pass", "max_ulp": 2.0}, "a.c": {"status": "pass"}})
    assert gate.evaluate([result("a.b", "pass", max_ulp=2.0)], doc, only={"a.b"}).ok
    report = gate.evaluate([result("a.b", "pass", max_ulp=3.0), result("a.c", "pass", max_ulp=0.5)], doc)
    assert rules(report) == [("a.b", "drifted"), ("a.c", "drifted")]
    message = report.violations[0].message
    assert message.startswith("max ULP error 3 > 2 allowed by the 2 recorded in the baseline")
    assert message.endswith("re-baseline with 'python -m conformance baseline'")
    assert "0.5 > 0 allowed" in report.violations[1].message  # no recorded error: held to 0


def test_on_another_host_class_growth_is_noted_and_pass_fail_still_judged():
    doc = baseline(host="another cpu", **{"a.b": {"status": "pass", "max_ulp": 10.0}, "a.c": {"status": "pass"}})
    report = gate.evaluate([result("a.b", "pass", max_ulp=90.0), result("a.c", "pass")], doc)
    assert report.ok and any("another cpu" in n and "ratchet is off" in n for n in report.notes)
    assert any(n.startswith("port a.b: max ULP error 90 > 10 recorded") for n in report.notes)
    report = gate.evaluate([result("a.b", "pass", max_ulp=90.0), result("a.c", "fail")], doc)
    assert rules(report) == [("a.c", "regression")]


def test_a_baseline_without_a_fingerprint_is_not_ratcheted_and_says_so():
    doc = {"format_version": 1, "profile": "ci", "backends": {"port": {"a.b": {"status": "pass", "max_ulp": 1.0}}}}
    report = gate.evaluate([result("a.b", "pass", max_ulp=50.0)], doc)
    assert report.ok and any("not ratcheted" in n for n in report.notes)


def test_a_new_baseline_records_the_host_of_each_backend_it_ran():
    doc = gate.make_baseline([result("a.b", "pass")], {"hosts": {"gpu": "cuda X"}, "backends": {}}, {}, "ci")
    assert doc["hosts"] == {"gpu": "cuda X", "port": environment.host_fingerprint("port")}


def test_a_pass_whose_error_shrank_is_noted_and_passes():
    doc = baseline(**{"a.b": {"status": "pass", "max_ulp": 4.0}})
    report = gate.evaluate([result("a.b", "pass", max_ulp=1.0)], doc)
    assert report.ok and any("1 < 4 recorded" in n for n in report.notes)


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


class _Subnormal(EggrollTorchAdapter):
    """eggroll_torch with the subnormal check's fitnesses changed where ``change`` says."""

    def __init__(self, change):
        super().__init__("cpu")
        self.change = change

    def convert_fitnesses(self, config, raw):
        return self.change(raw, super().convert_fitnesses(config, raw))


def _judge_subnormal(adapter, vector_reference):
    check = REGISTRY["normalization.subnormal_scores"]
    r = run_check(check, adapter, vector_reference, "ci")
    return r, gate.evaluate([r], gate.load_baseline(), aliases={adapter.name: "eggroll_torch"}, only={check.id})


def test_the_subnormal_known_difference_covers_the_flushed_elements_only(vector_reference):
    r, report = _judge_subnormal(_Subnormal(lambda raw, z: z), vector_reference)
    assert r.status == "fail" and r.max_ulp == 0 and report.ok
    assert "4 / 4 elements differ as the known difference states (XLA flushed subnormal scores" in r.messages[0]
    assert "the others are within 64 ULP (max ULP error 0)" in r.messages[0]


def test_an_error_the_subnormal_known_difference_does_not_state_grew(vector_reference):
    def normal_scores_off(raw, z):  # a case with a normal score, 3 ULP off: the statement does not cover it
        return np.nextafter(np.nextafter(np.nextafter(z, np.inf), np.inf), np.inf) if np.abs(raw).max() >= 1 else z

    def flushed_value_too_large(raw, z):  # a covered element, but larger than subnormal scores can make it
        return np.where(z != 0, np.float32(1e-20), z).astype(np.float32) if np.abs(raw).max() < 1 else z

    for change in (normal_scores_off, flushed_value_too_large):
        r, report = _judge_subnormal(_Subnormal(change), vector_reference)
        assert r.max_ulp > 0 and rules(report) == [("normalization.subnormal_scores", "grew")], change.__name__
