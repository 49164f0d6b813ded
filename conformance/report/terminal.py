"""What ``python -m conformance run`` prints: one progress line per result, then a summary table."""
from __future__ import annotations

import sys
from typing import TextIO

from ..results import CheckResult

MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERR ", "skip": "skip"}


def fmt_ulp(x: float) -> str:
    if x != x or x == float("inf"):
        return "inf"
    return f"{x:.0f}" if x < 1e5 else f"{x:.1e}"


class Progress:
    """``progress(done, total, result)`` callback printing one line per (backend, check)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def __call__(self, done: int, total: int, r: CheckResult) -> None:
        detail = r.note if r.status == "skip" else (r.messages[0] if r.messages else "")
        ulp = f"{fmt_ulp(r.max_ulp):>6} ULP" if r.status != "skip" else " " * 10
        print(f"[{done:3d}/{total}] {r.backend:<20.20} {r.check_id:<36} {MARK[r.status]} {r.n_cases:4d} cases "
              f"{ulp} {r.duration_s:6.2f}s  {detail[:90]}", file=self.stream, flush=True)


def summary_table(results: list[CheckResult]) -> str:
    """Checks down, backends across: status and max ULP error per cell."""
    backends = list(dict.fromkeys(r.backend for r in results))
    checks = list(dict.fromkeys(r.check_id for r in results))
    cell = {(r.backend, r.check_id): r for r in results}
    width = max(len(c) for c in checks) if checks else 10
    cols = [max(len(b), 14) for b in backends]
    lines = [f"{'check':<{width}}  " + "  ".join(f"{b:<{w}}" for b, w in zip(backends, cols))]
    lines.append("-" * len(lines[0]))
    for c in checks:
        row = []
        for b, w in zip(backends, cols):
            r = cell.get((b, c))
            if r is None:
                text = "-"
            else:
                text = MARK[r.status].strip() + ("" if r.status == "skip" else f" {fmt_ulp(r.max_ulp)}")
            row.append(f"{text:<{w}}")
        lines.append(f"{c:<{width}}  " + "  ".join(row))
    totals = []
    for b in backends:
        rs = [r for r in results if r.backend == b]
        counts = {s: sum(r.status == s for r in rs) for s in MARK}
        totals.append(f"{b}: {counts['pass']} pass, {counts['fail']} fail, {counts['error']} error, "
                      f"{counts['skip']} skip")
    return "\n".join(lines + [""] + totals)


def gate_text(report, unavailable: dict) -> str:
    lines = [f"not run: {name} ({why})" for name, why in unavailable.items()]
    if report.ok:
        lines.append(f"GATE PASSED ({', '.join(report.judged_backends)} judged against the baseline)")
    else:
        lines.append(f"GATE FAILED: {len(report.violations)} violation(s)")
        lines += [f"  {v}" for v in report.violations]
    return "\n".join(lines)
