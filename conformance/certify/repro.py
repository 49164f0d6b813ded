"""The smallest reproducing case of a failing check, written for a port author's bug report.

For a failing (or crashing) check the smallest of its failing fixed cases is run again on the
port and on the reference, and the report gets: the configuration, every input (arrays in full
when small, and always in full in the JSON), the injected noise when there was any, expected
versus got for each output that differs, the laws the outputs break, which reference member a
wrong member's noise actually equals (e.g. "thread 1 carries reference thread 2's noise": a
pairing bug), and whether the error is only rounding (within tolerance of the array's own scale).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass

import numpy as np

from ..tolerances import MANTISSA_BITS, TOLERANCES, compare, to_numpy, ulp

JSON_ARRAY_LIMIT = 4096
TEXT_ARRAY_LIMIT = 24
# Outputs whose rows are one member's noise (inputs identical across members), so a wrong row can
# be matched against the reference's other rows.
MEMBER_OUTPUTS = ("A", "B", "noise", "noisy")


@dataclass
class Repro:
    """Everything needed to file one bug: what upstream does, the inputs, expected vs got."""

    check_id: str
    summary: str
    status: str
    case_id: str
    mode: str
    inputs: dict
    outputs: list = field(default_factory=list)
    laws: list = field(default_factory=list)
    diagnosis: list = field(default_factory=list)
    error: str = ""
    command: str = ""
    laws_verdict: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def case_size(case) -> int:
    """Number of input elements of a case (arrays, tree leaves, population members)."""
    return _size(case.inputs)


def _size(value) -> int:
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    if hasattr(value, "thread_ids"):
        return int(value.size)
    return 0


def smallest_failing(check, result, profile: str, prefer: set | None = None):
    """The failing or crashing fixed case of ``result`` with the fewest input elements, or ``None``.

    Cases in ``prefer`` (those that also break the check's own laws, which name the bug more
    directly than a value difference) win over smaller ones outside it.
    """
    bad = {c.case_id for c in result.cases if c.status in ("fail", "error")}
    cases = [c for c in check.cases(profile) if c.case_id in bad]
    preferred = [c for c in cases if c.case_id in (prefer or set())]
    return min(preferred or cases, key=case_size, default=None)


def render(value, limit: int = JSON_ARRAY_LIMIT):
    """A JSON-able description of an input or output; arrays over ``limit`` keep shape and dtype only."""
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (dict, list))):
        arr = np.asarray(to_numpy(value))
        out = {"dtype": str(np.asarray(value).dtype), "shape": list(arr.shape)}
        if arr.size <= limit:
            out["values"] = arr.tolist()
        return out
    if hasattr(value, "thread_ids"):
        return {"epochs": value.epochs.tolist(), "thread_ids": value.thread_ids.tolist()}
    if hasattr(value, "to_json"):
        return value.to_json()
    if is_dataclass(value):
        return {k: render(v, limit) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): render(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, limit) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def text(value, limit: int = TEXT_ARRAY_LIMIT) -> str:
    """One-line text of an array (shortest round-tripping digits) or of any rendered value."""
    if isinstance(value, np.ndarray):
        arr = value
        if arr.size > limit:
            flat = np.array2string(arr.ravel()[:8], separator=", ", floatmode="unique", max_line_width=10**6)
            return f"{arr.dtype}{list(arr.shape)}, first values {flat[:-1]}, ...]"
        return f"{arr.dtype}{list(arr.shape)} " + np.array2string(arr, separator=", ", floatmode="unique",
                                                                   max_line_width=10**6).replace("\n", "")
    return str(render(value, limit))


def _member_labels(population) -> list[str]:
    """``thread t`` per member, with its epoch when the population spans several epochs."""
    mixed = len(set(population.epochs.tolist())) > 1
    return [f"thread {t}" + (f" at epoch {e}" if mixed else "")
            for e, t in zip(population.epochs.tolist(), population.thread_ids.tolist())]


def _member_diagnosis(name: str, got: np.ndarray, want: np.ndarray, kind: str, labels: list[str]) -> list[str]:
    """For each wrong member, the reference member whose value it carries (or its negation)."""
    out = []
    for n in range(min(len(got), len(want))):
        if compare(got[n], want[n], kind).ok:
            continue
        found = None
        for m in range(len(want)):
            if m != n and compare(got[n], want[m], kind).ok:
                found = f"equals the reference's {labels[m]}"
            elif compare(-got[n], want[m], kind).ok:
                found = (f"equals the reference's {labels[m]}, negated" if m != n
                         else "has the reference's value with the opposite sign")
            if found:
                break
        out.append(f"{name}: {labels[n]} {found or 'matches no reference member'}")
    return out


def _output_rows(check, got: dict, expected, case) -> tuple[list, list]:
    rows, diagnosis = [], []
    pop = case.inputs.get("population")
    for name, want in expected.outputs.items():
        if name not in got:
            rows.append({"output": name, "expected": render(want), "got": "missing",
                         "message": f"output {name} missing"})
            continue
        kind = check.kind(name)
        dtype = expected.dtypes.get(name)
        c = compare(got[name], want, kind, dtype)
        if c.ok:
            continue
        g, w = np.asarray(to_numpy(got[name])), np.asarray(to_numpy(want))
        row = {"output": name, "expected": render(want), "got": render(got[name]), "message": c.message(name),
               "max_abs": c.max_abs, "max_ulp": c.max_ulp, "allowed_ulp": c.allowed_ulp, "kind": c.kind}
        if g.shape == w.shape and w.size and np.isfinite(c.max_abs) and c.dtype in MANTISSA_BITS:
            scale_ulps = c.max_abs / ulp(np.nanmax(np.abs(w.astype(np.float64))), c.dtype)
            row["error_in_ulps_of_largest_value"] = float(scale_ulps)
            row["rounding_only"] = bool(scale_ulps <= TOLERANCES[c.kind][c.dtype])
        if pop is not None and name.split("/")[-1] in MEMBER_OUTPUTS and g.shape == w.shape \
                and g.ndim and g.shape[0] == pop.size:
            diagnosis += _member_diagnosis(name, g, w, kind, _member_labels(pop))[:6]
        rows.append(row)
    return rows, diagnosis


def build(check, adapter, reference, case, mode: str, command: str) -> Repro:
    """Run ``case`` again on ``adapter`` and the reference and describe the difference."""
    expected = reference.expected(check, case)
    noise = expected.aux if mode == "injected" else None
    inputs = {k: render(v) for k, v in case.inputs.items()}
    if noise:
        inputs["injected_noise"] = {k: render(v) for k, v in noise.items()}
    repro = Repro(check.id, check.summary, "fail", case.case_id, mode, inputs, command=command)
    try:
        got = {k: np.asarray(to_numpy(v)) for k, v in check.compute(adapter, case, noise=noise).items()}
    except Exception as e:  # the crash is the finding
        repro.status, repro.error = "error", f"{type(e).__name__}: {e}"
        return repro
    if mode != "relations":
        repro.outputs, repro.diagnosis = _output_rows(check, got, expected, case)
    repro.laws = list(check.relations(got, case))
    return repro


def markdown(repro: Repro) -> list[str]:
    """The repro as markdown lines (arrays over :data:`TEXT_ARRAY_LIMIT` elements abbreviated)."""
    lines = [f"Smallest failing case `{repro.case_id}` ({repro.mode}); reproduce with `{repro.command}`", ""]
    lines.append("- Inputs:")
    for name, value in repro.inputs.items():
        lines.append(f"  - `{name}`: {_short(value)}")
    if repro.error:
        lines.append(f"- The port raised: `{repro.error}`")
    for row in repro.outputs:
        lines.append(f"- `{row['output']}`: {row['message']}")
        lines.append(f"  - expected (JAX reference): {_short(row['expected'])}")
        lines.append(f"  - got (port): {_short(row['got'])}")
        if row.get("rounding_only"):
            lines.append(f"  - rounding only: the error is {row['error_in_ulps_of_largest_value']:.3g} ULP of the "
                         f"array's largest value, within the {row['kind']} tolerance; the port sums in another order")
    lines += [f"- Law broken: {m}" for m in repro.laws]
    lines += [f"- Diagnosis: {m}" for m in repro.diagnosis]
    if repro.laws_verdict == "pass":
        lines.append("- This check's own laws hold (on the port's own RNG where it draws noise): the values "
                     "differ because of another finding.")
    lines.append("")
    return lines


def _short(value) -> str:
    if isinstance(value, dict) and "shape" in value and "dtype" in value:
        arr = np.asarray(value["values"]) if "values" in value else None
        if arr is None:
            return f"{value['dtype']}{value['shape']} (too large to print)"
        return text(arr.astype(value["dtype"]) if value["dtype"] != "bfloat16" else arr)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)
