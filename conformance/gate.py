"""The CI gate: a run is compared with the committed baseline of expected statuses.

Baseline (``conformance/baseline.json``, schema ``schema/baseline.schema.json``)::

    {"format_version": 1, "profile": "ci",
     "backends": {"eggroll_torch": {"normalization.zscore": {"status": "pass", "max_ulp": 0.0},
                                    "x.y": {"status": "known_difference", "reason": "...",
                                            "allowed_ulp": 12.0}}}}

Violations (any one fails the gate):

* ``regression``: a ``pass`` check now fails or errors;
* ``drifted``: a ``pass`` check still passes, but its max ULP error grew past the ``max_ulp``
  recorded for it (the ratchet: a check that was exact may not drift to its full tolerance
  unnoticed). The ratchet holds on the host class the baseline was recorded on (``hosts``, see
  :func:`conformance.environment.host_fingerprint`), without slack: with the pinned versions a
  run reproduces its ULPs exactly, derandomized hypothesis examples included. On another host
  class XLA's and oneDNN's CPU kernels take other code paths (an AMD EPYC moved jax_reference's
  RWKV-7 forward by 72 ULP against an Intel Xeon's recorded 0, still passing), so no fixed
  slack tells a drift from the host: there, and for a backend recorded without a fingerprint,
  the ratchet is off and the gate notes every check whose error grew. A change meant to move
  the errors is recorded on purpose with ``python -m conformance baseline``; an error that
  shrank is noted, and re-baselining tightens the ratchet. A ``pass`` entry without ``max_ulp`` is held to 0;
* ``skipped``: a ``pass`` check is now skipped;
* ``disappeared``: a baseline check is absent from the run of that backend;
* ``fixed``: a known difference now passes (update the baseline: ``make conformance-baseline``);
* ``grew``: a known difference's error exceeds its recorded ``allowed_ulp`` (with a statement
  in ``known_differences.py``, the error of the elements the statement does not explain, which
  the runner measures apart);
* ``error``: a known difference now raises instead of differing;
* ``new_failure``: a check not in the baseline fails (backends without a baseline of their own
  are held to "everything passes or is skipped");
* ``unexplained``: a known difference without a reason.

Only backends that ran are judged; one that could not run here (no CUDA, no upstream checkout)
is listed as not run, not as a failure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import environment
from .results import CheckResult

BASELINE = Path(__file__).parent / "baseline.json"
SCHEMA = Path(__file__).parent / "schema" / "baseline.schema.json"
UNEXPLAINED = "UNEXPLAINED"
REBASELINE = "python -m conformance baseline"


@dataclass(frozen=True)
class Violation:
    backend: str
    check_id: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.backend} {self.check_id}: {self.rule}: {self.message}"


@dataclass
class GateReport:
    violations: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    judged_backends: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def load_baseline(path: str | Path | None = None) -> dict:
    """The baseline document (validated); an empty one if the file does not exist."""
    p = Path(path) if path else BASELINE
    if not p.is_file():
        return {"format_version": 1, "profile": "ci", "backends": {}}
    doc = json.loads(p.read_text())
    validate_baseline(doc)
    return doc


def validate_baseline(doc: dict) -> None:
    import jsonschema

    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def _judge_one(backend: str, expected: dict, got: dict[str, CheckResult], ratchet: str = "exact") -> tuple[list, list]:
    """``ratchet``: ``"exact"`` (same host class), ``"host"`` (another host class: growth is
    noted, not judged) or ``"off"`` (no fingerprint recorded)."""
    violations, notes = [], []
    for check_id, want in expected.items():
        r = got.get(check_id)
        status = want["status"]
        if r is None:
            violations.append(Violation(backend, check_id, "disappeared", f"was {status}, not in this run"))
            continue
        if status == "pass":
            if r.status in ("fail", "error"):
                first = (r.messages or [r.note or r.status])[0]
                violations.append(Violation(backend, check_id, "regression", f"pass -> {r.status}: {first}"))
            elif r.status == "skip":
                violations.append(Violation(backend, check_id, "skipped", f"pass -> skip: {r.note}"))
            else:
                recorded = float(want.get("max_ulp", 0.0))
                if ratchet == "off":
                    pass
                elif r.max_ulp > recorded and ratchet == "host":
                    notes.append(f"{backend} {check_id}: max ULP error {r.max_ulp:g} > {recorded:g} recorded on the "
                                 f"baseline's host class (tolerance {r.allowed_ulp:g} ULP); not judged here")
                elif r.max_ulp > recorded:
                    violations.append(Violation(
                        backend, check_id, "drifted",
                        f"max ULP error {r.max_ulp:g} > {recorded:g} allowed by the {recorded:g} recorded in the "
                        f"baseline (tolerance {r.allowed_ulp:g} ULP); if intended, re-baseline with '{REBASELINE}'"))
                elif r.max_ulp < recorded:
                    notes.append(f"{backend} {check_id}: max ULP error {r.max_ulp:g} < {recorded:g} recorded; "
                                 f"'{REBASELINE}' tightens the ratchet")
        elif status == "known_difference":
            reason = want.get("reason", "")
            if not reason or reason.startswith(UNEXPLAINED):
                violations.append(Violation(backend, check_id, "unexplained",
                                            "known difference without a reason in the baseline"))
            if r.status == "pass":
                violations.append(Violation(backend, check_id, "fixed",
                                            "known difference now passes; run 'make conformance-baseline'"))
            elif r.status == "error":
                violations.append(Violation(backend, check_id, "error", (r.messages or [r.note])[0]))
            elif r.status == "fail" and r.max_ulp > float(want.get("allowed_ulp", float("inf"))):
                violations.append(Violation(backend, check_id, "grew",
                                            f"max ULP {r.max_ulp:g} > recorded {want['allowed_ulp']:g}; "
                                            f"if intended, re-baseline with '{REBASELINE}'"))
        elif status == "skip" and r.status in ("fail", "error"):
            violations.append(Violation(backend, check_id, "new_failure", f"skip -> {r.status}"))
        elif status == "skip" and r.status == "pass":
            notes.append(f"{backend} {check_id}: was skipped, now passes")
    for check_id, r in got.items():
        if check_id in expected:
            continue
        if r.status in ("fail", "error"):
            first = (r.messages or [r.note or r.status])[0]
            violations.append(Violation(backend, check_id, "new_failure", f"{r.status}: {first}"))
        else:
            notes.append(f"{backend} {check_id}: not in the baseline ({r.status})")
    return violations, notes


def evaluate(results: list[CheckResult], baseline: dict, aliases: dict[str, str] | None = None,
             only: set[str] | None = None) -> GateReport:
    """Judge ``results`` against ``baseline``; ``aliases`` maps a backend name to the baseline
    entry it must meet (e.g. a deliberately broken wrapper of ``eggroll_torch``); ``only``
    restricts the judgement to those check ids (a run of selected checks does not make the
    others "disappear")."""
    by_backend: dict[str, dict[str, CheckResult]] = {}
    for r in results:
        by_backend.setdefault(r.backend, {})[r.check_id] = r
    report = GateReport()
    for backend, got in by_backend.items():
        key = (aliases or {}).get(backend, backend)
        expected = baseline.get("backends", {}).get(key, {})
        if only is not None:
            expected = {k: v for k, v in expected.items() if k in only}
        if not expected:
            report.notes.append(f"{backend}: no baseline; every check must pass or be skipped")
        recorded_host = baseline.get("hosts", {}).get(key)
        here = environment.host_fingerprint(backend)
        ratchet = "off" if recorded_host is None else "exact" if recorded_host == here else "host"
        if expected and ratchet == "off":
            report.notes.append(f"{backend}: baseline recorded without a host fingerprint, so not ratcheted; "
                                "re-baseline on this host")
        elif expected and ratchet == "host":
            report.notes.append(f"{backend}: baseline recorded on '{recorded_host}', this host is '{here}': "
                                "pass/fail judged, the ULP ratchet is off (re-baseline here to ratchet)")
        v, n = _judge_one(backend, expected, got, ratchet)
        report.violations += v
        report.notes += n
        report.judged_backends.append(backend)
    return report


def make_baseline(results: list[CheckResult], previous: dict, reasons: dict, profile: str) -> dict:
    """A new baseline from ``results``: passes stay ``pass``, failures become known differences
    with the reason from ``reasons`` (``{check_id or backend/check_id: text}``) or the previous
    baseline, else a reason starting ``UNEXPLAINED`` that the gate rejects until edited.
    Backends absent from ``results`` keep their previous entries."""
    backends = {k: dict(v) for k, v in previous.get("backends", {}).items()}
    fresh: dict[str, dict] = {}
    for r in results:
        entry: dict = {"status": "pass" if r.status == "pass" else "skip" if r.status == "skip"
                       else "known_difference"}
        if entry["status"] == "pass":
            entry["max_ulp"] = _num(r.max_ulp)
        elif entry["status"] == "known_difference":
            old = backends.get(r.backend, {}).get(r.check_id, {})
            reason = (reasons.get(f"{r.backend}/{r.check_id}") or reasons.get(r.check_id)
                      or (old.get("reason") if old.get("status") == "known_difference" else None))
            first = (r.messages or [r.note or r.status])[0]
            entry["reason"] = reason or f"{UNEXPLAINED}: {first}"
            entry["allowed_ulp"] = _num(r.max_ulp)
        else:
            entry["reason"] = r.note
        fresh.setdefault(r.backend, {})[r.check_id] = entry
    backends.update(fresh)
    hosts = dict(previous.get("hosts", {}))
    hosts.update({b: environment.host_fingerprint(b) for b in fresh})
    return {"format_version": 1, "profile": profile, "hosts": dict(sorted(hosts.items())),
            "backends": {b: dict(sorted(c.items())) for b, c in sorted(backends.items())}}


def _num(x: float) -> float:
    return x if x == x and abs(x) != float("inf") else 1e300


def write_baseline(doc: dict, path: str | Path | None = None) -> None:
    validate_baseline(doc)
    Path(path or BASELINE).write_text(json.dumps(doc, indent=1) + "\n")
