"""What a trainer-level check is, its registry, and how it runs on a :class:`TrainerAdapter`.

A trainer check judges one upstream behaviour from what a port's trainer does to the probe of
:mod:`.probes` (or, for training behaviour, to a small task): every perturbation a member sees is
observed exactly, so laws that need no shared RNG are checked exactly (``observed``: antithetic
pairs, rank, ``noise_reuse``, the update as a function of the observed noise) and distributional
properties by tests whose false-alarm rate and power are stated (``statistical``). Ids share the
``<component>.<behaviour>`` namespace of :mod:`conformance.checks` and never repeat one of its ids.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from ..adapters.base import Unsupported
from ..adapters.trainer import TrainerConfig
from ..checks.base import REGISTRY
from ..results import CaseResult, CheckResult, combine

IMPACTS = ("high", "medium", "low")


@dataclass(frozen=True)
class TrainerCase:
    """One configuration a check runs the port with."""

    case_id: str
    config: TrainerConfig


class TrainerCheck:
    """Base class: set ``id``, ``component``, ``impact``, ``summary``, ``mode`` (``"observed"`` or
    ``"statistical"``) and ``power`` (what the test detects, at what false-alarm rate), and
    implement :meth:`cases` and :meth:`judge`."""

    id: str = ""
    component: str = ""
    impact: str = "high"
    summary: str = ""
    mode: str = "observed"
    power: str = ""

    def cases(self) -> list[TrainerCase]:
        raise NotImplementedError

    def judge(self, observer, case: TrainerCase) -> tuple[list[str], float]:
        """``(violations, max_abs)`` of the port on ``case``; raises ``Unsupported`` to skip."""
        raise NotImplementedError


TRAINER_REGISTRY: dict[str, TrainerCheck] = {}


def register(cls):
    """Class decorator: instantiate the check and add it to :data:`TRAINER_REGISTRY`."""
    inst = cls()
    if not inst.id or "." not in inst.id or inst.id in TRAINER_REGISTRY or inst.id in REGISTRY:
        raise ValueError(f"{cls.__name__}: id {inst.id!r} must be '<component>.<behaviour>' and unique among all "
                         "checks")
    if inst.impact not in IMPACTS or inst.mode not in ("observed", "statistical") or not inst.power:
        raise ValueError(f"{inst.id}: needs an impact in {IMPACTS}, mode 'observed' or 'statistical' and a power text")
    TRAINER_REGISTRY[inst.id] = inst
    return cls


def run_trainer_check(check: TrainerCheck, observer) -> CheckResult:
    """Every case of ``check`` on the observer's adapter; a crash or refusal is a result."""
    start = time.perf_counter()
    result = CheckResult(check.id, observer.adapter.name, check.component, check.impact, "skip", check.mode,
                         note=check.power)
    for case in check.cases():
        try:
            violations, max_abs = check.judge(observer, case)
        except Unsupported as e:
            result.cases.append(CaseResult(case.case_id, "skip", check.mode, messages=[str(e)]))
            continue
        except Exception as e:
            frame = traceback.extract_tb(e.__traceback__)[-1]
            result.cases.append(CaseResult(case.case_id, "error", check.mode, messages=[
                f"{type(e).__name__}: {e} ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"]))
            continue
        result.cases.append(CaseResult(case.case_id, "fail" if violations else "pass", check.mode,
                                       max_abs=float(max_abs), messages=violations[:6]))
    result.status = combine(c.status for c in result.cases)
    if result.status == "skip":
        result.note = next((m for c in result.cases for m in c.messages), result.note)
    elif check.id in observer.notes:
        result.note = f"{observer.notes[check.id]}. {check.power}"
    result.duration_s = time.perf_counter() - start
    return result
