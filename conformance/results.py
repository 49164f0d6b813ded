"""Outcomes of running checks: per output, per case, per (backend, check).

Statuses: ``pass``, ``fail`` (an output over its allowed error or a violated law), ``error``
(the backend raised), ``skip`` (not applicable to this backend, with the reason).
Modes say what a result was compared against: ``reference`` (the JAX reference's outputs),
``injected`` (the reference's noise fed to a port with its own RNG, then compared),
``relations`` (own RNG: only the check's laws), ``hypothesis`` (generated inputs, live reference).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

STATUSES = ("pass", "fail", "error", "skip")
MODES = ("reference", "injected", "relations", "hypothesis", "none")


@dataclass
class OutputResult:
    """One compared output array."""

    name: str
    ok: bool
    kind: str
    dtype: str
    allowed_ulp: float
    max_ulp: float
    max_abs: float
    mismatches: int
    total: int


@dataclass
class CaseResult:
    case_id: str
    status: str
    mode: str
    max_abs: float = 0.0
    max_ulp: float = 0.0
    allowed_ulp: float = 0.0
    messages: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    examples: int = 1


@dataclass
class CheckResult:
    """One check on one backend, with the worst error over its cases."""

    check_id: str
    backend: str
    component: str
    impact: str
    status: str
    mode: str
    cases: list = field(default_factory=list)
    note: str = ""
    duration_s: float = 0.0

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.cases), default=0.0)

    @property
    def max_ulp(self) -> float:
        return max((c.max_ulp for c in self.cases), default=0.0)

    @property
    def allowed_ulp(self) -> float:
        worst = max(self.cases, key=lambda c: c.max_ulp - c.allowed_ulp, default=None)
        return worst.allowed_ulp if worst else 0.0

    @property
    def n_cases(self) -> int:
        return sum(c.examples for c in self.cases if c.status != "skip")

    @property
    def messages(self) -> list[str]:
        return [f"{c.case_id}: {m}" for c in self.cases for m in c.messages]

    def to_json(self) -> dict:
        return {"check_id": self.check_id, "backend": self.backend, "component": self.component,
                "impact": self.impact, "status": self.status, "mode": self.mode, "note": self.note,
                "duration_s": round(self.duration_s, 4), "n_cases": self.n_cases,
                "max_abs": _finite(self.max_abs), "max_ulp": _finite(self.max_ulp),
                "allowed_ulp": self.allowed_ulp, "cases": [_case_json(c) for c in self.cases]}


def _finite(x: float):
    """JSON has no inf/nan: report them as strings."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


def _case_json(case: CaseResult) -> dict:
    d = asdict(case)
    d["max_abs"], d["max_ulp"] = _finite(case.max_abs), _finite(case.max_ulp)
    d["outputs"] = [{**o, "max_abs": _finite(o["max_abs"]), "max_ulp": _finite(o["max_ulp"])} for o in d["outputs"]]
    return d


def combine(statuses) -> str:
    """Status of a check from its cases: error > fail > pass > skip."""
    s = set(statuses)
    for status in ("error", "fail", "pass"):
        if status in s:
            return status
    return "skip"
