"""XLA:CPU's float32 ``erf_inv`` (and the ``log1p`` inside it), operation for operation.

Read from the optimized x86-64 code jaxlib 0.10.2 generates for ``jax.random.normal``: each step
below is one machine instruction of that kernel, rounded to float32, and each ``fma_f32`` is a
multiply-add LLVM contracted into an FMA instruction. Constants are the kernel's float32 bit
patterns. Inputs are float32 tensors; intermediate work happens in float64 with explicit
rounding, so results do not depend on how torch vectorizes.
"""
from __future__ import annotations

import numpy as np
import torch

from .exact_arith import fma_f32, sqrt_exact


def _f32(bits: int) -> float:
    return float(np.array(bits, dtype=np.uint32).view(np.float32))


# log1p(x) for |x| < sqrt(2) - 1: x - x^2/2 + x^3 * P(x)/Q(x) (Cephes-style), Horner form.
_LOG1P_SMALL = _f32(0x3ED413CD)
_LOG1P_P = (4.527e-05, _f32(0x3EFF40C5), _f32(0x40D284FA), _f32(0x41EF4B9C), _f32(0x4273CC76),
            _f32(0x426473AD), _f32(0x41A05101))
_LOG1P_Q = (1.0, _f32(0x417101AD), _f32(0x42A6185B), _f32(0x435DC32D), _f32(0x439A8CA3),
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


def _mul(a, b) -> torch.Tensor:
    return (a.double() * b).float() if isinstance(a, torch.Tensor) else (a * b.double()).float()


def _add(a, b) -> torch.Tensor:
    return (a.double() + b).float() if isinstance(a, torch.Tensor) else (a + b.double()).float()


def _log_f32(y: torch.Tensor) -> torch.Tensor:
    """log(y) for finite y > 0 as XLA:CPU's polynomial computes it."""
    y = torch.where(y > _FLT_MIN, y, torch.full_like(y, _FLT_MIN))
    bits = y.view(torch.int32)
    exponent = ((bits >> 23) - 127).float() + 1.0
    m = ((bits & 0x807FFFFF) | 0x3F000000).view(torch.float32)
    below = m < _SQRT_HALF
    xr = _add(_add(m, -1.0), torch.where(below, m, torch.zeros_like(m)))
    e = torch.where(below, exponent - 1.0, exponent)
    a = fma_f32(xr, fma_f32(xr, _LOG_A[0], _LOG_A[1]), _LOG_A[2])
    b = fma_f32(xr, fma_f32(xr, _LOG_B[0], _LOG_B[1]), _LOG_B[2])
    c = fma_f32(xr, fma_f32(xr, _LOG_C[0], _LOG_C[1]), _LOG_C[2])
    z = _mul(xr, xr)
    z3 = _mul(z, xr)
    r = fma_f32(z3, fma_f32(z3, a, b), c)
    s = fma_f32(z3, r, _mul(e, _LN2_TAIL))
    h = fma_f32(z, -0.5, xr)
    return fma_f32(e, _LN2_HEAD, _add(h, s))


def _log1p_small_f32(x: torch.Tensor) -> torch.Tensor:
    num = torch.full_like(x, _LOG1P_P[0])
    den = torch.full_like(x, _LOG1P_Q[0])
    for p, q in zip(_LOG1P_P[1:], _LOG1P_Q[1:]):
        num = fma_f32(x, num, p)
        den = fma_f32(x, den, q)
    ratio = (num.double() / den.double()).float()
    x2 = _mul(x, x)
    cubic = _mul(_mul(x, x2), ratio)
    return _add(x, fma_f32(x2, -0.5, cubic))


def log1p_f32(x: torch.Tensor) -> torch.Tensor:
    """XLA:CPU ``log-plus-one`` for float32 x > -1 (finite).

    The kernel evaluates both branches and selects; each element here runs only the branch it
    keeps, which gives the same values at half the cost.
    """
    small = x.abs() < _LOG1P_SMALL
    out = torch.empty_like(x)
    out[small] = _log1p_small_f32(x[small])
    out[~small] = _log_f32(_add(x[~small], 1.0))
    return out


def erf_inv_f32(u: torch.Tensor) -> torch.Tensor:
    """XLA:CPU ``erf_inv`` for float32 u in (-1, 1); +-inf at +-1."""
    minus_w = log1p_f32(_mul(u, -u))
    central = minus_w > -5.0
    t = torch.where(central, _add(-2.5, -minus_w), _add(sqrt_exact(-minus_w), -3.0))
    small = torch.tensor(_ERFINV_SMALL, dtype=torch.float32, device=u.device)
    large = torch.tensor(_ERFINV_LARGE, dtype=torch.float32, device=u.device)
    p = torch.where(central, small[0], large[0])
    for k in range(1, 9):
        p = fma_f32(t, p, torch.where(central, small[k], large[k]))
    p = torch.where(u.abs() == 1.0, torch.full_like(p, float("inf")), p)
    return _mul(u, p)
