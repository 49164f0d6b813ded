"""The float32 values ``jax.random.normal`` produces on a CUDA GPU (XLA:GPU), one per mantissa.

``jax.random.normal`` draws a float32 from the 23 high bits of a random word (the mantissa
``m``), maps it to ``u`` in ``[nextafter(-1, 0), 1)`` like ``jax.random.uniform``, and returns
``sqrt(2) * erf_inv(u)``. So a float32 normal takes one of 2**23 values, and a table indexed by
``m`` reproduces it. On XLA:GPU the table differs from XLA:CPU's in about 4.7% of entries,
because the operations inside ``erf_inv`` are compiled differently:

* ``erf_inv`` is the chlo decomposition (Giles' single-precision approximation):
  ``w = -log1p(-u*u)``, then a degree-8 polynomial in ``w - 2.5`` (``w < 5``) or
  ``sqrt(w) - 3`` (``w >= 5``), times ``u``.
  On the GPU its multiplies and adds stay separately rounded (no FMA contraction): the
  recorded values rule contraction out, while XLA:CPU does contract them.
* ``log1p`` is libdevice's ``__nv_log1pf`` (read from CUDA 13.0's ``libdevice.10.bc``, non-FTZ
  path; the recording agrees with it bit for bit): the argument is reduced to ``[-1/4, 1/2]``
  with a round-toward-zero ``1 + a`` and exponent arithmetic on the bit pattern, then a
  degree-10 polynomial is evaluated with explicit ``fmaf``.
* ``sqrt`` is the GPU's approximate ``sqrt.approx.f32`` (libdevice's ``__nv_sqrtf`` without
  ``__CUDA_PREC_SQRT``; ptxas turns it into one ``MUFU.SQRT`` for sm_90), which returns either
  float32 neighbour of the exact root by unpublished hardware tables. It only matters in the
  ``w >= 5`` branch (``|u| > 0.99663``, 28309 of the 2**23 entries). When the table is built for
  a CUDA device, that instruction itself computes the root (:func:`cuda_sqrt_approx`); without
  a GPU the root is correctly rounded, which differs in 4,243 tail entries by 1 to 3 ulps.

Every float32 operation is emulated in float64 with one rounding to float32 (exact for
``+ - *`` of float32 inputs); ``fma`` rounds the float64 sum to odd first, so the final rounding
cannot round twice.

Verified against ``jax.random.normal`` under ``jit`` on an NVIDIA H100 (jax 0.11.2; vectors in
``tests/random/vectors/gpu_f32_diffs_jax0112.npz``, checked by
``tests/random/test_gpu_variant.py``): all 8,360,299 entries with ``w < 5`` match bit for bit;
with the hardware square root (measured on an H200, same sm_90 instruction) all 28,309 tail
entries match too; with the correctly rounded root 4,243 of them differ by 1 to 3 ulps.
"""
from __future__ import annotations

import numpy as np

_F32, _F64 = np.float32, np.float64
N_MANTISSAS = 2**23


def _f32(bits: int) -> np.float32:
    return np.array(bits, dtype=np.uint32).view(np.float32)[()]


# __nv_log1pf's constants (float32 bit patterns), highest-degree coefficient first.
_LOG1P_POLY = tuple(_f32(b) for b in (0xBD39BF78, 0x3DD80012, 0xBE0778E0, 0x3E146475, 0xBE2A68DD,
                                      0x3E4CAF9E, 0xBE800042, 0x3EAAAAE6))
_LN2 = _f32(0x3F317218)
# Giles' erf_inv coefficients as chlo.erf_inv spells them, for w < 5 and w >= 5.
_ERFINV_CENTRAL = tuple(_f32(b) for b in (0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1,
                                          0x396532DB, 0xBAA45408, 0xBB88E4EF, 0x3E7C8F63,
                                          0x3FC02E2F))
_ERFINV_TAIL = tuple(_f32(b) for b in (0xB951F09B, 0x38D3B56B, 0x3AB0DC72, 0xBB70BDE7, 0x3BBC127B,
                                       0xBBF9C5D7, 0x3C1AA57E, 0x3F8036DB, 0x40354F7E))
_SQRT2 = _f32(0x3FB504F3)


def _wide(x) -> np.ndarray:
    return np.asarray(x, dtype=_F32).astype(_F64)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s = fl(a + b)`` and the exact remainder ``a + b - s`` (Knuth's TwoSum), both float64."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _nearest_f32(s: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The float32 nearest to ``s + rest``, via a float64 rounded to odd (no double rounding)."""
    bits = s.view(np.int64)
    away_from_zero = (rest > 0) == (s > 0)
    odd = np.where((rest != 0) & ((bits & 1) == 0), bits + np.where(away_from_zero, 1, -1), bits)
    return odd.view(_F64).astype(_F32)


def _add(a, b) -> np.ndarray:
    a64, b64 = np.broadcast_arrays(_wide(a), _wide(b))
    return (a64 + b64).astype(_F32)


def _mul(a, b) -> np.ndarray:
    return (_wide(a) * _wide(b)).astype(_F32)


def _fma(a, b, c) -> np.ndarray:
    """``a * b + c`` rounded once to float32; the float64 product of float32s is exact."""
    product, addend = np.broadcast_arrays(_wide(a) * _wide(b), _wide(c))
    return _nearest_f32(*_two_sum(product, addend))


def _add_toward_zero(a: np.ndarray, b: float) -> np.ndarray:
    """``a + b`` rounded toward zero to float32 (PTX ``add.rz.f32``)."""
    s, rest = _two_sum(_wide(a), np.full(a.shape, b, dtype=_F64))
    r = s.astype(_F32)
    r64 = r.astype(_F64)
    too_big = (np.abs(r64) > np.abs(s)) | ((r64 == s) & (rest != 0) & ((rest > 0) != (s > 0)))
    return np.where(too_big, np.nextafter(r, _F32(0)), r)


def log1p_libdevice(a: np.ndarray) -> np.ndarray:
    """libdevice ``__nv_log1pf`` for finite nonzero float32 ``a > -1`` (shape preserved).

    ``1 + a = 2**e * (1 + m)`` with ``1 + m`` in ``[3/4, 3/2)``: ``e`` comes from the bit pattern of
    ``1 + a`` rounded toward zero, and ``m = 2**-e * a + (2**-e - 1)`` is formed exactly by
    integer exponent arithmetic. Then ``log1p(a) = e * ln2 + m - m**2/2 + m**3 * P(m)``.
    """
    a = np.asarray(a, dtype=_F32)
    e = (_add_toward_zero(a, 1.0).view(np.int32) - np.int32(0x3F400000)) & np.int32(-(1 << 23))
    scaled_a = (a.view(np.int32) - e).view(_F32)
    four_scale = (np.int32(0x40800000) - e).view(_F32)
    m = _add(scaled_a, _fma(_F32(0.25), four_scale, _F32(-1.0)))
    exponent = _mul(e.astype(_F32), _F32(2.0**-23))
    r = _fma(_LOG1P_POLY[0], m, _LOG1P_POLY[1])
    for coeff in _LOG1P_POLY[2:]:
        r = _fma(r, m, coeff)
    r = _fma(r, m, _F32(-0.5))
    r = _fma(_mul(r, m), m, m)
    return _fma(exponent, _LN2, r)


def _sqrt_rn(w: np.ndarray) -> np.ndarray:
    return np.sqrt(w.astype(_F64)).astype(_F32)


def cuda_sqrt_approx(device):
    """A float32 numpy -> numpy square root run by the GPU's own ``sqrt.approx.f32`` on ``device``.

    The instruction's rounding is not published, so the only exact source of XLA:GPU's root is
    the hardware itself; torch's jiterator compiles the one-instruction kernel at first use.
    """
    import torch

    kernel = torch.cuda.jiterator._create_jit_fn(
        'template <typename T> T sqrt_approx(T x) { float r; '
        'asm("sqrt.approx.f32 %0, %1;" : "=f"(r) : "f"(x)); return r; }'
    )

    def root(w: np.ndarray) -> np.ndarray:
        values = torch.from_numpy(np.ascontiguousarray(w, dtype=_F32)).to(device)
        return kernel(values).cpu().numpy()

    return root


def erf_inv_gpu(u: np.ndarray, sqrt=_sqrt_rn) -> np.ndarray:
    """XLA:GPU's float32 ``erf_inv`` for ``u`` in ``(-1, 1)`` (shape preserved).

    Both branches are evaluated and selected, as the compiled kernel does. ``sqrt`` maps float32
    to float32; the default is correctly rounded, :func:`cuda_sqrt_approx` is the GPU's own
    (exact) one (see the module docstring).
    """
    u = np.asarray(u, dtype=_F32)
    w = -log1p_libdevice(_mul(u, -u))
    central = w < _F32(5.0)
    root = _sqrt_rn(w)
    tail = ~central
    if tail.any():
        root[tail] = sqrt(w[tail])
    t = np.where(central, _add(w, _F32(-2.5)), _add(root, _F32(-3.0)))
    p = np.where(central, _ERFINV_CENTRAL[0], _ERFINV_TAIL[0])
    for c_central, c_tail in zip(_ERFINV_CENTRAL[1:], _ERFINV_TAIL[1:]):
        p = _add(_mul(p, t), np.where(central, c_central, c_tail))
    return _mul(p, u)


def uniform_from_mantissa(m: np.ndarray) -> np.ndarray:
    """``jax.random.uniform``'s float32 in ``[nextafter(-1, 0), 1)`` for 23-bit mantissas ``m``."""
    lo = np.nextafter(_F32(-1.0), _F32(0.0))
    unit = (np.asarray(m, dtype=np.uint32) | np.uint32(0x3F800000)).view(_F32) - _F32(1.0)
    # The scale (1 - lo) rounds to 2.0, so the product is exact and contracting it cannot matter.
    return np.maximum(lo, _add(_mul(unit, _F32(1.0) - lo), lo))


def normal_float32_table_gpu(sqrt=_sqrt_rn) -> np.ndarray:
    """Float32 ``jax.random.normal`` on XLA:GPU for every mantissa: shape ``(2**23,)``, float32.

    Entry ``m`` is the normal drawn from a random 32-bit word whose top 23 bits are ``m`` (the
    low 9 bits are discarded by ``jax.random.uniform``). ``sqrt`` as in :func:`erf_inv_gpu`:
    exact everywhere with :func:`cuda_sqrt_approx`, else exact for ``|u| <= 0.99663``.
    """
    u = uniform_from_mantissa(np.arange(N_MANTISSAS, dtype=np.uint32))
    return _mul(erf_inv_gpu(u, sqrt), _SQRT2)
