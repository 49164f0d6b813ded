"""The one tolerance table of the project, and the assertions that read it.

Every comparison in ``tests/`` and in the harness goes through :func:`compare` (or the asserts
built on it: :func:`assert_parity`, :func:`assert_same_bits`, :func:`assert_tree_parity`), so a
reader finds every allowed error here and nowhere else. A comparison names a *kind*: a row of
:data:`TOLERANCES` (an error in ULPs per dtype) or a bound of :data:`LAWS`.

Under every kind of :data:`TOLERANCES` the dtype must be the expected one exactly: a float32
result where the reference gave bfloat16 fails, however close its values ("dtype float32,
expected bfloat16"), because a value left in the wrong dtype (a factor kept in float32, an update
never cast back to the parameter's dtype) rounds differently from the next operation on. The one
exception is an adapter that declares it hands bfloat16 results back widened to float32
(``widened_bfloat16``): its values must then be bfloat16 values exactly.

ULP error is per element: ``|got - expected| / ulp(max(|expected|, floor))``, where ``ulp(x)``
is the spacing of the dtype at ``x`` and ``floor = FLOOR[kind][dtype] * max|expected|``. An
element is measured in ULPs of its own expected value, so a small entry that is wrong fails
even when its error is tiny next to the array's largest entry; only elements below the floor
are compared absolutely, at the ULP of the floor. Floors exist because of cancellation: a sum's
rounding error is a few ulp of its TERMS, so an entry that cancelled to a thousandth of its
terms carries an error of a thousand of its own ulp from any correct summation order
(:data:`FLOOR` gives each floor and why; bfloat16 and float16 reductions keep the largest
magnitude as theirs). Integer, key and index arrays must match exactly under every kind.
``exact`` compares values: -0.0 equals 0.0 and a NaN equals any NaN. ``bits`` compares bit
patterns: it tells -0.0 from 0.0 and one NaN payload from another.

A law bound (:class:`Bound`) is for a result checked against a formula evaluated in float64, or
against the same math computed another way, where no reference's rounding is reproduced and so
a ULP count has nothing to count against (and no dtype is required: the formula has its own).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# kind -> dtype name -> allowed ULP error. Reasons per kind:
#   bits        keys, draws, saved and synchronised state: the same bits, sign of zero and NaN
#               payload included, because the algorithm (or a copy) fixes every bit.
#   exact       keys, signs, indices, drawn noise: the algorithm fixes every value.
#   elementwise the same IEEE operations in the same order; only FMA contraction may differ.
#   reduction   sums over members or matmuls: XLA and torch/oneDNN pick different
#               summation orders, so errors grow with the reduction length.
#   fused       a forward through several layers where bias and low-rank correction are added
#               in a matmul's epilogue (one rounding where the reference rounds two or three
#               times, as XLA:GPU's and cuBLAS's epilogue fusions also do): each layer may move
#               an output by about one ulp, and later layers carry it on.
#   trajectory  several optimizer steps feed back reduction-level differences.
#   recurrence  a language model's recurrent state (RWKV-7's WKV matrices, QRWKV6's) carried over
#               tokens and layers: each token's update rounds in another order per backend (XLA
#               interleaves a matmul's partial sums, torch sums sequentially; XLA's float32 tanh
#               is an approximation) and the state feeds the error to every later token. Measured
#               on CPU, float32: at most 108 ULP over the models.rwkv7_* cases, 146 over ten random
#               QRWKV6 checkpoints; bfloat16 at most 4.6.
TOLERANCES: dict[str, dict[str, float]] = {
    "bits": {"float64": 0, "float32": 0, "bfloat16": 0, "float16": 0},
    "exact": {"float64": 0, "float32": 0, "bfloat16": 0, "float16": 0},
    "elementwise": {"float64": 2, "float32": 2, "bfloat16": 1, "float16": 1},
    "reduction": {"float64": 64, "float32": 64, "bfloat16": 2, "float16": 4},
    "fused": {"float64": 64, "float32": 64, "bfloat16": 8, "float16": 8},
    "trajectory": {"float64": 4096, "float32": 4096, "bfloat16": 16, "float16": 32},
    "recurrence": {"float64": 256, "float32": 256, "bfloat16": 8, "float16": 8},
}

# dtype name -> explicit mantissa bits, which fix the ULP at a given magnitude.
MANTISSA_BITS: dict[str, int] = {"float64": 52, "float32": 23, "bfloat16": 7, "float16": 10}
_MIN_EXPONENT = {"float64": -1022, "float32": -126, "bfloat16": -126, "float16": -14}

# kind -> dtype name -> the floor, as a fraction of max|expected|: elements smaller than it are
# compared absolutely, at the ULP of the floor; larger ones in ULPs of their own expected value.
# An element below the floor may be off by TOLERANCES[kind][dtype] * FLOOR[kind][dtype] ULPs of
# the array's largest magnitude. Why each is this large:
#   exact, bits  nothing is allowed, so no floor is needed (0 ULP of anything is 0).
#   elementwise  one operation per element, but an FMA (a * b + c rounded once) where the
#                reference rounds a * b first makes an error of one ulp of a * b, which may be
#                far above the ulp of a result that cancelled: 2**-10 leaves an element below
#                a thousandth of the array's scale 2 / 1024 ULP of that scale.
#   reduction    a sum or matmul is off by a few ulp of its terms, which are about the size of
#                the array's largest entries. float32/float64: 2**-4 lets an entry that
#                cancelled below 1/16 of the largest be off by 64 / 16 = 4 ULP of the largest,
#                what two correct summation orders differ by (measured on CPU: at most 25 ULP
#                over every fixed case and hypothesis example of eggroll_torch against the
#                reference; 384 with no floor). bfloat16/float16: their tolerance of 2-4 ULP is
#                itself about the rounding of the terms in those formats (a bfloat16 forward
#                batched two ways differs by 7 ULP on an entry a seventh of the largest, under 1
#                ULP of the largest), so they are measured against the largest magnitude.
#   fused        the same reductions, rounded once per layer: as reduction.
#   recurrence   the same reductions, carried in a recurrent state: as reduction.
#   trajectory   ten optimizer steps feed rounding back into the params, so an error is a
#                fraction of the step size, not of a param that happens to be near zero.
#                float32/float64: 2**-8 lets a param below 1/256 of the largest be off by
#                4096 / 256 = 16 ULP of the largest (measured on CPU: at most 687 ULP per element;
#                68 000 with no floor). bfloat16/float16: as reduction.
_LOW_PRECISION_NORMWISE = {"bfloat16": 1.0, "float16": 1.0}
FLOOR: dict[str, dict[str, float]] = {
    "bits": {"float64": 0.0, "float32": 0.0, "bfloat16": 0.0, "float16": 0.0},
    "exact": {"float64": 0.0, "float32": 0.0, "bfloat16": 0.0, "float16": 0.0},
    "elementwise": {"float64": 2.0**-10, "float32": 2.0**-10, "bfloat16": 2.0**-10, "float16": 2.0**-10},
    "reduction": {"float64": 2.0**-4, "float32": 2.0**-4, **_LOW_PRECISION_NORMWISE},
    "fused": {"float64": 2.0**-4, "float32": 2.0**-4, **_LOW_PRECISION_NORMWISE},
    "trajectory": {"float64": 2.0**-8, "float32": 2.0**-8, **_LOW_PRECISION_NORMWISE},
    "recurrence": {"float64": 2.0**-4, "float32": 2.0**-4, **_LOW_PRECISION_NORMWISE},
}


@dataclass(frozen=True)
class Bound:
    """A law's allowed error: ``|got - expected| <= atol * scale + rtol * |expected|`` for every
    element. Equal values pass (infinities included); a NaN on either side never does.

    ``scale`` is 1 unless ``normwise``; then it is ``max(min_scale, s)``, where ``s`` is the scale
    the caller passes or, by default, ``max|expected|``: the error is measured against the size
    of the whole array, as a norm-wise bound does.
    """

    rtol: float = 0.0
    atol: float = 0.0
    normwise: bool = False
    min_scale: float = 0.0

    def describe(self, scale: float) -> str:
        terms = ([f"{self.atol:g}" + (f" * {scale:.3g}" if self.normwise else "")] if self.atol else []) + (
            [f"{self.rtol:g} * |expected|"] if self.rtol else [])
        return "|got - expected| <= " + (" + ".join(terms) or "0")


# name -> Bound, for laws and formula checks. Each says why it is this wide.
LAWS: dict[str, Bound] = {
    # float32 fitness shaping (means, variances, a sqrt and a division, each rounded in float32;
    # scores up to ~3) against its formula in float64.
    "fitness_formula": Bound(rtol=2e-6, atol=1e-6),
    # one member's float32 forward alone against its row of the population call: the same
    # products, batched differently, so torch may pick another matmul kernel and summation order.
    "member_row": Bound(rtol=1e-6, atol=1e-6),
    # a float32 result against the same value derived another way in float32 (JAX's fitness
    # shaping, A @ B.T by einsum): a few roundings of values of size ~1.
    "float32_rederived": Bound(rtol=1e-6, atol=1e-7),
    # the same float32 math through other torch ops (torch.optim's kernels, a differently batched
    # matmul, sigma doubled): torch.testing.assert_close's float32 default, outside the parity
    # guarantee.
    "float32_other_ops": Bound(rtol=1.3e-6, atol=1e-5),
    # the float32 z-scores a reproducing case prints (the reference's and a port's) against the
    # float64 formula each follows; ddof=0 and ddof=1 differ by far more.
    "report_zscores": Bound(rtol=1e-5),
    # optax.adamw's first float32 step against its float64 derivation by hand: about 17 float32
    # ulp of the params' scale (at least 1); torch's weight decay of 1e-2 moves it by 1e-2 * lr * |p|.
    "adamw_first_step": Bound(atol=2e-6, normwise=True, min_scale=1.0),
    # an SGD step against +lr * sqrt(N) * estimate rebuilt in float64 from the float32 noise: the
    # law tells ascent from descent and a wrong scale, far above float32 rounding.
    "ascent_step": Bound(rtol=1e-4, atol=1e-6, normwise=True),
    # the mean of float32 z-scores, which cancels N values of size ~1, against 0; scale is the
    # scores' expected root mean square, at least 1.
    "zscore_mean": Bound(atol=1e-3, normwise=True, min_scale=1.0),
    # the mean square of the z-scores against var / (var + eps): 1% tells the population variance
    # from ddof=1 ((N - 1) / N, 6% or more at the <= 16 members of the ddof check) and eps inside
    # the sqrt from eps added to the std.
    "zscore_mean_square": Bound(rtol=1e-2, atol=1e-6),
    # per-group means of float32 z-scores against 0, measured against the scores' size (at least 1).
    "group_mean": Bound(atol=1e-4, normwise=True, min_scale=1.0),
    # (raw - group mean) / score against the global sqrt(var + eps), over scores above 1e-3 whose
    # float32 rounding moves the ratio by ~1e-4; per-group stds differ by far more.
    "group_scale": Bound(rtol=1e-3, atol=1e-8),
    # x @ W.T (and x @ W) in float32 against float64: rounding of a dot product of length <= 8.
    "unperturbed_forward": Bound(rtol=1e-5, atol=1e-5),
    # the reference's float32 z-scores against the float64 formula with eps inside the sqrt and
    # ddof=0; ddof=1 is off by more than 1e-2.
    "claim_zscore": Bound(atol=1e-5),
    # a float32 result against its float64 formula, relative to the result's size (the update
    # estimate, group normalisation).
    "claim_formula": Bound(atol=1e-5, normwise=True),
    # the median of step / estimate against sqrt(N), both from float32 results.
    "claim_sqrt_n": Bound(rtol=1e-4),
    # a float32 SGD step on a bias against +lr * sqrt(N) * mean(f * noise) in float64.
    "claim_ascent": Bound(rtol=1e-5, atol=1e-8),
    # a float32 forward with the noise negated, minus the unperturbed forward, against minus the
    # perturbation: the two forwards round differently (values of size ~1), a wrong sign is off by 2x.
    "negated_noise": Bound(rtol=1e-5, atol=1e-5),
}

# A sample std of n independent normals has standard error sigma / sqrt(2n): allow this many of
# them, and never less than STD_MIN_RTOL, so a correct sampler fails less than once in 15 000 runs.
STD_SIGMAS = 4.0
STD_MIN_RTOL = 0.1


def std_tolerance(samples: int) -> float:
    """Allowed relative error of a sample std from ``samples`` independent normals."""
    return max(STD_MIN_RTOL, STD_SIGMAS / np.sqrt(2.0 * samples))


def _plain(array):
    """A JAX typed key array as its uint32 key words; anything else unchanged."""
    if str(getattr(array, "dtype", "")).startswith("key<"):
        import jax

        return jax.random.key_data(array)
    return array


def dtype_name(array) -> str:
    """Canonical dtype name of a numpy, jax or torch array (a JAX key: its words' ``uint32``), or
    of the numpy array a Python value becomes."""
    array = _plain(array)
    if not hasattr(array, "dtype"):
        array = np.asarray(array)
    return str(array.dtype).replace("torch.", "")


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a dtype name; ``"bfloat16"`` is ``ml_dtypes.bfloat16`` (installed with
    jaxlib), which numpy itself lacks.

    Args:
        name (str): a numpy dtype name, or ``"bfloat16"``.

    Returns:
        np.dtype: the dtype.

    Raises:
        ImportError: ``name`` is ``"bfloat16"`` and ml_dtypes is not installed.
    """
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def to_numpy(array) -> np.ndarray:
    """Host copy of any array in its own dtype, never a view of the backend's memory.

    Args:
        array: a numpy, jax or torch array, or a Python value.

    Returns:
        np.ndarray: a copy with the same dtype and values: a torch or jax bfloat16 array as an
        ``ml_dtypes.bfloat16`` array with the same bits, torch's uint32 as numpy's, a JAX key as
        its ``uint32`` key words.

    Raises:
        ImportError: a torch bfloat16 tensor and ml_dtypes is not installed.
    """
    array = _plain(array)
    if hasattr(array, "detach"):
        import torch

        # A copy: a CPU tensor's .numpy() shares its storage, which the backend may update later.
        t = array.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(numpy_dtype("bfloat16")).copy()
        if t.dtype == torch.uint32:
            return t.view(torch.int32).numpy().view(np.uint32).copy()
        return t.numpy().copy()
    return np.array(array, copy=True)


def _bit_patterns(array) -> np.ndarray:
    """The raw bits of any array as unsigned integers of its element width."""
    array = _plain(array)
    if hasattr(array, "detach"):
        import torch

        t = array.detach().cpu().contiguous()
        size = t.element_size()
        signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
        return t.view(signed).numpy().view(f"u{size}")
    a = np.asarray(array)
    return a.view(f"u{a.dtype.itemsize}")


def ulp(magnitude, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at ``|magnitude|`` (subnormal spacing below the smallest normal)."""
    mag = np.maximum(np.abs(np.asarray(magnitude, np.float64)), np.finfo(np.float64).tiny)
    exp = np.maximum(np.floor(np.log2(mag)), _MIN_EXPONENT[dtype])
    return np.exp2(exp - MANTISSA_BITS[dtype])


@dataclass(frozen=True)
class Comparison:
    """Outcome of one comparison, with what a mismatch message needs.

    ``allowed`` says in words what was allowed. ``allowed_ulp`` and ``max_ulp`` are NaN under a
    law bound, which counts no ULPs. ``worst_index`` is the element furthest over the allowance
    (under ``bits`` the first that differs; None when shapes or dtypes differ), and ``detail``
    what it, or the shape or dtype mismatch, looked like.
    """

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
    allowed: str
    detail: str = ""

    def message(self, what: str = "arrays") -> str:
        if self.ok:
            return f"{what}: equal within {self.allowed} ({self.dtype}, {self.kind})"
        head = f"{what} not close ({self.dtype}, {self.kind}): "
        if self.worst_index is None and self.detail:
            return head + self.detail
        ulps = "" if math.isnan(self.max_ulp) else f"max ULP error {self.max_ulp:g}, "
        over = "differ in their bits" if self.kind == "bits" else f"over {self.allowed}"
        return (
            f"{head}{self.mismatches} / {self.total} elements {over}; {ulps}"
            f"max abs error {self.max_abs:g}, max rel error {self.max_rel:g}, "
            f"worst at index {self.worst_index}" + (f": {self.detail}" if self.detail else "")
        )


def _index(flat: int, shape: tuple) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _failed(dtype: str, kind: str, size: int, allowed: str, detail: str) -> Comparison:
    """A shape or dtype mismatch: every element fails, with nothing to measure."""
    return Comparison(False, dtype, kind, 0.0 if kind in TOLERANCES else math.nan, math.inf, math.inf, math.inf,
                      size, size, None, allowed, detail)


def _dtype_problem(got, want: str, widened_bfloat16: bool) -> str:
    """Why ``got`` does not stand for a result of dtype ``want``; empty when it does."""
    have = dtype_name(got)
    if have == want:
        return ""
    if not (widened_bfloat16 and have == "float32" and want == "bfloat16"):
        return f"dtype {have}, expected {want}"
    values = to_numpy(got)
    inexact = ~((values.astype(numpy_dtype("bfloat16")).astype(np.float32) == values) | np.isnan(values))
    if not inexact.any():
        return ""
    first = _index(int(np.argmax(inexact)), inexact.shape)
    return (f"dtype float32 widened from bfloat16, but {int(inexact.sum())} / {values.size} values are not "
            f"bfloat16 values (first at index {first}: {float(values[first])!r})")


def compare(got, expected, kind: str, dtype: str | None = None, *, scale: float | None = None,
            widened_bfloat16: bool = False, exempt=None) -> Comparison:
    """Compare ``got`` with ``expected`` under ``kind``: a row of :data:`TOLERANCES` (a ULP
    allowance per dtype, or ``bits``) or a :class:`Bound` of :data:`LAWS`.

    Under a row of :data:`TOLERANCES` ``got`` must have the expected dtype exactly and each
    element's error is counted in ULPs of its own expected value down to the kind's
    :data:`FLOOR`; integer arrays are always compared exactly. Shapes must match exactly. A dtype
    or shape mismatch fails every element.

    Args:
        got: the backend's result (numpy, jax or torch array, or a Python value).
        expected: the reference's result.
        kind (str): a row of :data:`TOLERANCES` or a bound of :data:`LAWS`.
        dtype (str | None): the dtype the reference produced, which ``got`` must have and whose
            ULPs measure the error. Default ``None``: ``expected``'s own.
        scale (float | None): replaces ``max|expected|`` as the scale of a normwise law.
            Default ``None``.
        widened_bfloat16 (bool): accept a float32 ``got`` where ``dtype`` is bfloat16, provided
            every value is a bfloat16 value (an adapter that declares
            :attr:`conformance.adapters.base.Adapter.widens_bfloat16`). Default ``False``.
        exempt: boolean array of ``expected``'s shape, or ``None``: elements a stated known
            difference explains (:mod:`conformance.known_differences`), left out of the
            mismatches and the maxima; the floor still comes from the whole array. Default
            ``None``.

    Returns:
        Comparison: whether every element is within the allowance, and what a message needs.

    Raises:
        KeyError: ``kind`` names no row of :data:`TOLERANCES` and no bound of :data:`LAWS`.
        ValueError: ``scale`` given with a kind that is not a normwise law.
    """
    if kind not in TOLERANCES and kind not in LAWS:
        raise KeyError(f"unknown tolerance kind {kind!r}; the kinds are {sorted(TOLERANCES) + sorted(LAWS)}")
    if scale is not None and not (kind in LAWS and LAWS[kind].normwise):
        raise ValueError(f"scale applies to a normwise law, not to {kind!r}")
    dtype = dtype or dtype_name(expected)
    if kind in TOLERANCES:
        problem = _dtype_problem(got, dtype, widened_bfloat16)
        if problem:
            size = max(to_numpy(got).size, to_numpy(expected).size)
            return _failed(dtype, kind, size, f"dtype {dtype}", problem)
        if dtype_name(got) != dtype:
            got = to_numpy(got).astype(numpy_dtype(dtype))  # a declared, exact widening: read it as it was
    if kind == "bits":
        return _compare_bits(got, expected, dtype, exempt)
    g = to_numpy(got)
    e = to_numpy(expected)
    if g.shape != e.shape:
        n = max(g.size, e.size)
        return _failed(dtype, kind, n, "the expected shape", f"shape {g.shape}, expected {e.shape}")
    if kind in LAWS:
        return _compare_law(g, e, kind, dtype, scale)
    counted = np.ones(e.shape, bool) if exempt is None else ~np.broadcast_to(np.asarray(exempt, bool), e.shape)
    if dtype not in MANTISSA_BITS:
        diff = (g.astype(np.int64) != e.astype(np.int64)) & counted if g.size else np.zeros(0, bool)
        bad = int(diff.sum())
        idx = _index(int(np.argmax(diff)), diff.shape) if bad else None
        abs_err = float(np.where(diff, np.abs(g.astype(np.float64) - e.astype(np.float64)), 0.0).max()) \
            if g.size else 0.0
        return Comparison(bad == 0, dtype, "exact", 0, float(bad > 0), abs_err, 0.0, bad, g.size, idx, "0 ULP")
    allowed = TOLERANCES[kind][dtype]
    g64 = g.astype(np.float64)
    e64 = e.astype(np.float64)
    if g.size == 0:
        return Comparison(True, dtype, kind, allowed, 0.0, 0.0, 0.0, 0, 0, None, f"{allowed} ULP")
    same = (g64 == e64) | (np.isnan(g64) & np.isnan(e64)) | ~counted
    with np.errstate(invalid="ignore"):  # inf - inf where both sides overflowed
        abs_err = np.where(same, 0.0, np.abs(g64 - e64))
    abs_err = np.nan_to_num(abs_err, nan=np.inf, posinf=np.inf)
    finite = np.isfinite(e64)
    array_scale = np.abs(e64[finite]).max() if finite.any() else 0.0
    floor = array_scale * FLOOR[kind][dtype]
    ulp_err = abs_err / ulp(np.maximum(np.abs(e64), floor), dtype)
    ulp_err = np.where(same, 0.0, ulp_err)
    rel_err = np.where(same, 0.0, abs_err / np.maximum(np.abs(e64), np.finfo(np.float64).tiny))
    over = ulp_err > allowed
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
        worst_index=_index(int(np.argmax(ulp_err)), ulp_err.shape),
        allowed=f"{allowed} ULP",
    )


def _compare_bits(got, expected, dtype: str, exempt) -> Comparison:
    got_dtype, expected_dtype = dtype_name(got), dtype_name(expected)
    g, e = _bit_patterns(got), _bit_patterns(expected)
    allowed = "identical bits"
    if got_dtype != expected_dtype or g.shape != e.shape:
        detail = (f"dtype {got_dtype}, expected {expected_dtype}" if got_dtype != expected_dtype
                  else f"shape {g.shape}, expected {e.shape}")
        return _failed(dtype, "bits", max(g.size, e.size), allowed, detail)
    values = compare(got, expected, "exact", dtype, exempt=exempt)
    differ = g != e
    if exempt is not None:
        differ &= ~np.broadcast_to(np.asarray(exempt, bool), differ.shape)
    bad = int(differ.sum())
    first = _index(int(np.argmax(differ)), differ.shape) if bad else None
    detail = f"got {g[first]:#x}, expected {e[first]:#x}" if bad else ""
    return Comparison(bad == 0, dtype, "bits", 0, values.max_ulp, values.max_abs, values.max_rel, bad, int(g.size),
                      first, allowed, detail)


def _compare_law(g: np.ndarray, e: np.ndarray, kind: str, dtype: str, scale: float | None) -> Comparison:
    bound = LAWS[kind]
    g64, e64 = g.astype(np.float64), e.astype(np.float64)
    size = 1.0
    if bound.normwise:
        size = float(np.maximum(bound.min_scale, (np.abs(e64).max() if e64.size else 0.0) if scale is None
                                else scale))
    described = bound.describe(size)
    if g.size == 0:
        return Comparison(True, dtype, kind, math.nan, math.nan, 0.0, 0.0, 0, 0, None, described)
    same = g64 == e64
    with np.errstate(invalid="ignore"):  # inf - inf, and inf * 0 where rtol or atol is 0
        abs_err = np.where(same, 0.0, np.nan_to_num(np.abs(g64 - e64), nan=np.inf))
        allowed = bound.atol * size + bound.rtol * np.abs(e64)
        over = ~(same | (abs_err <= allowed))
        rel_err = np.where(same, 0.0, abs_err / np.maximum(np.abs(e64), np.finfo(np.float64).tiny))
        excess = np.nan_to_num(abs_err - allowed, nan=np.inf)
    worst = _index(int(np.argmax(excess)), excess.shape)
    return Comparison(
        ok=not over.any(),
        dtype=dtype,
        kind=kind,
        allowed_ulp=math.nan,
        max_ulp=math.nan,
        max_abs=float(abs_err.max()),
        max_rel=float(rel_err.max()),
        mismatches=int(over.sum()),
        total=int(g.size),
        worst_index=worst,
        allowed=described,
        detail=f"got {g64[worst]:.9g}, expected {e64[worst]:.9g}" if over.any() else "",
    )


def assert_parity(got, expected, kind: str, dtype: str | None = None, what: str = "arrays", *,
                  scale: float | None = None) -> Comparison:
    """:func:`compare`, raising ``AssertionError`` with an assert_close-style message on failure."""
    result = compare(got, expected, kind, dtype, scale=scale)
    if not result.ok:
        raise AssertionError(result.message(what))
    return result


def assert_same_bits(got, expected, what: str = "arrays") -> Comparison:
    """Identical dtype, shape and bit patterns: :func:`assert_parity` under ``bits``."""
    return assert_parity(got, expected, "bits", what=what)


def _is_array(leaf) -> bool:
    """Arrays, and Python numbers as the 0-d arrays numpy makes of them."""
    return (hasattr(leaf, "dtype") and hasattr(leaf, "shape")) or isinstance(leaf, (bool, int, float, complex))


def _children(node) -> tuple[str, list[tuple[str, object]]] | None:
    """(the container's description, [(path step, child)]) of a container; None for a leaf.

    Mappings give their children in sorted key order, as ``jax.tree`` does; ``None`` is a
    container without children, as in ``jax.tree`` and ``eggroll_torch.tree``.
    """
    if node is None:
        return "None", []
    if isinstance(node, Mapping):
        try:
            keys = sorted(node)
        except TypeError:
            keys = sorted(node, key=repr)
        return f"{type(node).__name__} with keys {keys}", [(f"[{k!r}]", node[k]) for k in keys]
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        return f"{type(node).__name__}{tuple(node._fields)}", [(f".{f}", v) for f, v in zip(node._fields, node)]
    if isinstance(node, (list, tuple)):
        return f"{type(node).__name__} of {len(node)}", [(f"[{i}]", v) for i, v in enumerate(node)]
    return None


def _flatten(tree, path: str, containers: list, leaves: list) -> None:
    node = _children(tree)
    if node is None:
        leaves.append((path, tree))
        return
    containers.append((path, node[0]))
    for step, child in node[1]:
        _flatten(child, path + step, containers, leaves)


def assert_tree_parity(got, expected, kind: str, what: str = "tree") -> list[Comparison]:
    """Two trees of the same structure whose leaves agree: array leaves (Python numbers included)
    with the same dtype and shape and values within ``kind`` (as :func:`assert_parity`), other
    leaves (str, ...) equal.

    Trees are nested mappings, lists, tuples and NamedTuples (a torch tree and its JAX
    counterpart alike); the structure is the containers' type names, keys, fields and lengths.
    Returns the array leaves' comparisons in ``jax.tree`` leaf order.
    """
    got_containers, got_leaves, expected_containers, expected_leaves = [], [], [], []
    _flatten(got, "", got_containers, got_leaves)
    _flatten(expected, "", expected_containers, expected_leaves)
    if got_containers != expected_containers:
        (path, mine), (other, theirs) = next(
            (a, b) for a, b in itertools.zip_longest(got_containers, expected_containers, fillvalue=(None, "nothing"))
            if a != b)
        path = other if path is None else path
        raise AssertionError(f"{what}: tree structure differs at {path or 'the root'}: {mine}, expected {theirs}")
    comparisons = []
    for (path, g), (_, e) in zip(got_leaves, expected_leaves):
        name = f"{what}{path}"
        if _is_array(g) and _is_array(e):
            if dtype_name(g) != dtype_name(e):
                raise AssertionError(f"{name}: dtype {dtype_name(g)}, expected {dtype_name(e)}")
            comparisons.append(assert_parity(g, e, kind, what=name))
        elif _is_array(g) or _is_array(e) or not g == e:
            raise AssertionError(f"{name}: {g!r}, expected {e!r}")
    return comparisons
