"""XLA:CPU's float32 ``erf_inv`` (and the ``log1p`` inside it), operation for operation.

Read from the optimized x86-64 code jaxlib 0.10.2 generates for ``jax.random.normal``: each step
below is one machine instruction of that kernel, rounded to float32, and each ``fma32`` is a
multiply-add LLVM contracted into an FMA instruction. Constants are the kernel's float32 bit
patterns. Works on numpy float32 arrays (see :mod:`exact_numpy` for why numpy).
"""
from __future__ import annotations

import numpy as np

from .exact_numpy import F32, add32, div32, fma32, mul32


def _f32(bits: int) -> np.float32:
    return np.array(bits, dtype=np.uint32).view(F32)[()]


# log1p(x) for |x| < sqrt(2) - 1: x - x^2/2 + x^3 * P(x)/Q(x) (Cephes-style), Horner form.
_LOG1P_SMALL = _f32(0x3ED413CD)
_LOG1P_P = (F32(4.527e-05), _f32(0x3EFF40C5), _f32(0x40D284FA), _f32(0x41EF4B9C), _f32(0x4273CC76),
            _f32(0x426473AD), _f32(0x41A05101))
_LOG1P_Q = (F32(1.0), _f32(0x417101AD), _f32(0x42A6185B), _f32(0x435DC32D), _f32(0x439A8CA3),
            _f32(0x43586D8A), _f32(0x42707982))
# log(y) = e*ln2 + log(m), m in [sqrt(.5), sqrt(2)): a degree-9 polynomial evaluated in three
# interleaved Horner chains, then ln2 split into a float32 head and tail.
_SQRT_HALF = _f32(0x3F3504F3)
_LOG_A = (_f32(0x3D9021BB), _f32(0xBDEBD1B8), _f32(0x3DEF251A))
_LOG_B = (_f32(0xBDFE5D4F), _f32(0x3E11E9BF), _f32(0xBE2AAE50))
_LOG_C = (_f32(0x3E4CCEAC), _f32(0xBE7FFFFC), _f32(0x3EAAAAAA))
_LN2_TAIL = _f32(0xB95E8083)
_LN2_HEAD = _f32(0x3F318000)
_FLT_MIN = _f32(0x00800000)
# erf_inv (Giles' single-precision approximation): w < 5 and w >= 5 coefficient sets.
_ERFINV_SMALL = tuple(_f32(b) for b in (0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1, 0x396532DB,
                                        0xBAA45408, 0xBB88E4EF, 0x3E7C8F63, 0x3FC02E2F))
_ERFINV_LARGE = tuple(_f32(b) for b in (0xB951F09B, 0x38D3B56B, 0x3AB0DC72, 0xBB70BDE7, 0x3BBC127B,
                                        0xBBF9C5D7, 0x3C1AA57E, 0x3F8036DB, 0x40354F7E))
SQRT2_F32 = _f32(0x3FB504F3)


def _log_f32(y: np.ndarray) -> np.ndarray:
    """log(y) for finite y > 0 as XLA:CPU's polynomial computes it."""
    y = np.where(y > _FLT_MIN, y, _FLT_MIN).astype(F32)
    bits = y.view(np.int32)
    exponent = ((bits >> 23) - 127).astype(F32) + F32(1.0)
    m = ((bits & np.int32(-2139095041)) | np.int32(0x3F000000)).view(F32)
    below = m < _SQRT_HALF
    xr = add32(add32(m, F32(-1.0)), np.where(below, m, F32(0.0)))
    e = np.where(below, exponent - F32(1.0), exponent)
    a = fma32(xr, fma32(xr, _LOG_A[0], _LOG_A[1]), _LOG_A[2])
    b = fma32(xr, fma32(xr, _LOG_B[0], _LOG_B[1]), _LOG_B[2])
    c = fma32(xr, fma32(xr, _LOG_C[0], _LOG_C[1]), _LOG_C[2])
    z = mul32(xr, xr)
    z3 = mul32(z, xr)
    r = fma32(z3, fma32(z3, a, b), c)
    s = fma32(z3, r, mul32(e, _LN2_TAIL))
    h = fma32(z, F32(-0.5), xr)
    return fma32(e, _LN2_HEAD, add32(h, s))


def _log1p_small_f32(x: np.ndarray) -> np.ndarray:
    num = np.full_like(x, _LOG1P_P[0])
    den = np.full_like(x, _LOG1P_Q[0])
    for p, q in zip(_LOG1P_P[1:], _LOG1P_Q[1:]):
        num = fma32(x, num, p)
        den = fma32(x, den, q)
    x2 = mul32(x, x)
    cubic = mul32(mul32(x, x2), div32(num, den))
    return add32(x, fma32(x2, F32(-0.5), cubic))


def log1p_rational_branch(x: np.ndarray) -> np.ndarray:
    """Where XLA:CPU's float32 log1p keeps its rational branch (``|x| < 0.4142``), else ``log(1 + x)``."""
    return np.abs(np.asarray(x, F32)) < _LOG1P_SMALL


def log1p_f32(x: np.ndarray) -> np.ndarray:
    """XLA:CPU ``log-plus-one`` for float32 x > -1 (finite).

    The kernel evaluates both branches and selects; each element here runs only the branch it
    keeps, which gives the same values at half the cost.
    """
    x = np.asarray(x, F32)
    small = log1p_rational_branch(x)
    out = np.empty_like(x)
    out[small] = _log1p_small_f32(x[small])
    out[~small] = _log_f32(add32(x[~small], F32(1.0)))
    return out


def erf_inv_f32(u: np.ndarray) -> np.ndarray:
    """XLA:CPU ``erf_inv`` for float32 u in (-1, 1); +-inf at +-1."""
    u = np.asarray(u, F32)
    minus_w = log1p_f32(mul32(u, -u))
    central = minus_w > F32(-5.0)
    root = np.sqrt(-minus_w)
    t = np.where(central, add32(F32(-2.5), -minus_w), add32(root, F32(-3.0)))
    p = np.where(central, _ERFINV_SMALL[0], _ERFINV_LARGE[0])
    for small, large in zip(_ERFINV_SMALL[1:], _ERFINV_LARGE[1:]):
        p = fma32(t, p, np.where(central, small, large))
    p = np.where(np.abs(u) == F32(1.0), F32(np.inf), p)
    return mul32(u, p)
