"""The one tolerance table of the project, per dtype, in ULPs.

Every parity comparison in ``tests/`` and in the harness goes through :func:`compare`, so a
reader finds every allowed error here and nowhere else.

ULP error of one element is ``|got - expected| / ulp(max(|expected|, floor))`` where ``ulp(x)``
is the spacing of the dtype at ``x`` and ``floor = FLOOR[kind] * max|expected|``: values that
cancelled to near zero are measured against the array's own scale instead of their tiny
magnitude (an update entry that sums to 1e-9 from terms of size 1 is not held to 1e-9's ulp).
For ``elementwise`` the floor is ``2**-10`` of the array's scale. For ``reduction`` and
``trajectory`` it is the scale itself (normwise): a sum's rounding error is a few ulp of its
TERMS, so a result that cancelled to a hundredth of the array's scale is still measured in ulp
of that scale (two correct matmuls with different summation orders differ by ~1-4 such ulp).
Integer, key and index arrays must match exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# kind -> dtype name -> allowed ULP error. Reasons per kind:
#   exact       keys, bits, signs, indices, drawn noise: the algorithm fixes every bit.
#   elementwise the same IEEE operations in the same order; only FMA contraction may differ.
#   reduction   sums over members or matmuls: XLA and torch/oneDNN pick different
#               summation orders, so errors grow with the reduction length.
#   fused       a forward through several layers where bias and low-rank correction are added
#               in a matmul's epilogue (one rounding where the reference rounds two or three
#               times, as XLA:GPU's and cuBLAS's epilogue fusions also do): each layer may move
#               an output by about one ulp, and later layers carry it on.
#   trajectory  several optimizer steps feed back reduction-level differences.
TOLERANCES: dict[str, dict[str, float]] = {
    "exact": {"float64": 0, "float32": 0, "bfloat16": 0, "float16": 0},
    "elementwise": {"float64": 2, "float32": 2, "bfloat16": 1, "float16": 1},
    "reduction": {"float64": 64, "float32": 64, "bfloat16": 2, "float16": 4},
    "fused": {"float64": 64, "float32": 64, "bfloat16": 8, "float16": 8},
    "trajectory": {"float64": 4096, "float32": 4096, "bfloat16": 16, "float16": 32},
}

_BITS = {"float64": 52, "float32": 23, "bfloat16": 7, "float16": 10}

# kind -> fraction of max|expected| below which an element is measured at that floor.
FLOOR: dict[str, float] = {"exact": 2.0**-10, "elementwise": 2.0**-10, "reduction": 1.0, "fused": 1.0,
                           "trajectory": 1.0}


def dtype_name(array) -> str:
    """Canonical dtype name of a numpy, jax or torch array."""
    name = str(array.dtype)
    return name.replace("torch.", "")


def to_numpy(array) -> np.ndarray:
    """Host copy of any array; bfloat16 becomes float32 (exactly representable)."""
    if hasattr(array, "detach"):
        t = array.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        elif str(t.dtype) == "torch.uint32":
            t = t.to(dtype=__import__("torch").int64)
        return t.numpy()
    arr = np.asarray(array)
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def _ulp(magnitude: np.ndarray, dtype: str) -> np.ndarray:
    mant = _BITS[dtype]
    mag = np.maximum(np.abs(magnitude.astype(np.float64)), np.finfo(np.float64).tiny)
    exp = np.floor(np.log2(mag))
    min_exp = {"float64": -1022, "float32": -126, "bfloat16": -126, "float16": -14}[dtype]
    exp = np.maximum(exp, min_exp)
    return np.exp2(exp - mant)


@dataclass(frozen=True)
class Comparison:
    """Outcome of one comparison, with what a mismatch message needs."""

    ok: bool
    dtype: str
    kind: str
    allowed_ulp: float
    max_ulp: float
    max_abs: float
    max_rel: float
    mismatches: int
    total: int
    worst_index: tuple | None

    def message(self, what: str = "arrays") -> str:
        if self.ok:
            return f"{what}: equal within {self.allowed_ulp} ULP ({self.dtype}, {self.kind})"
        return (
            f"{what} not close ({self.dtype}, {self.kind}): {self.mismatches} / {self.total} "
            f"elements over {self.allowed_ulp} ULP; max ULP error {self.max_ulp:g}, "
            f"max abs error {self.max_abs:g}, max rel error {self.max_rel:g}, "
            f"worst at index {self.worst_index}"
        )


def compare(got, expected, kind: str, dtype: str | None = None) -> Comparison:
    """Compare ``got`` with ``expected`` under the table entry ``TOLERANCES[kind][dtype]``.

    ``dtype`` defaults to ``expected``'s dtype; integer arrays are always compared exactly.
    Shapes must match exactly (a shape mismatch is reported as every element mismatching).
    """
    dtype = dtype or dtype_name(expected)
    g = to_numpy(got)
    e = to_numpy(expected)
    if g.shape != e.shape:
        n = max(g.size, e.size)
        return Comparison(False, dtype, kind, 0, float("inf"), float("inf"), float("inf"), n, n, None)
    if dtype not in _BITS:
        diff = g.astype(np.int64) != e.astype(np.int64) if g.size else np.zeros(0, bool)
        bad = int(diff.sum())
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape)) if bad else None
        abs_err = float(np.abs(g.astype(np.float64) - e.astype(np.float64)).max()) if g.size else 0.0
        return Comparison(bad == 0, dtype, "exact", 0, float(bad > 0), abs_err, 0.0, bad, g.size, idx)
    allowed = TOLERANCES[kind][dtype]
    g64 = g.astype(np.float64)
    e64 = e.astype(np.float64)
    if g.size == 0:
        return Comparison(True, dtype, kind, allowed, 0.0, 0.0, 0.0, 0, 0, None)
    same = (g64 == e64) | (np.isnan(g64) & np.isnan(e64))
    abs_err = np.where(same, 0.0, np.abs(g64 - e64))
    abs_err = np.nan_to_num(abs_err, nan=np.inf, posinf=np.inf)
    finite = np.isfinite(e64)
    scale = np.abs(e64[finite]).max() if finite.any() else 0.0
    floor = scale * FLOOR[kind]
    ulp_err = abs_err / _ulp(np.maximum(np.abs(e64), floor), dtype)
    ulp_err = np.where(same, 0.0, ulp_err)
    rel_err = np.where(same, 0.0, abs_err / np.maximum(np.abs(e64), np.finfo(np.float64).tiny))
    over = ulp_err > allowed
    worst = np.unravel_index(int(np.argmax(ulp_err)), ulp_err.shape)
    return Comparison(
        ok=not over.any(),
        dtype=dtype,
        kind=kind,
        allowed_ulp=allowed,
        max_ulp=float(ulp_err.max()),
        max_abs=float(abs_err.max()),
        max_rel=float(rel_err.max()),
        mismatches=int(over.sum()),
        total=int(g.size),
        worst_index=tuple(int(i) for i in worst),
    )


def assert_parity(got, expected, kind: str, dtype: str | None = None, what: str = "arrays") -> Comparison:
    """:func:`compare`, raising ``AssertionError`` with an assert_close-style message on failure."""
    result = compare(got, expected, kind, dtype)
    if not result.ok:
        raise AssertionError(result.message(what))
    return result
