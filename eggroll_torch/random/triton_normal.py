"""Triton kernels for CUDA: ``jax.random.normal`` for a batch of keys, hashed and finished in
one pass, bit for bit equal to the other backends of :mod:`eggroll_torch.random`.

Float32 values are computed, not looked up: the 32 MiB table of :mod:`normal_tables` turns every
value into a random L2 read (measured on an H100: 0.9e11 values/s, against 1.9e11 computed).
The arithmetic is kept to ``erf_inv``'s central branch (``w < 5``): the 28,309 tail mantissas
(``|u| > 0.99663``, two contiguous ranges at the ends) are read from a 110 KiB tail table, which
drops the square root and the per-branch coefficient selects (for the ``"gpu"`` variant the table
takes its roots from the device's own ``sqrt.approx.f32``, see :mod:`gpu_variant`). ``MODE_XLA_CPU`` repeats :mod:`xla_cpu_f32` operation for operation
(``tl.fma`` where XLA:CPU contracts); its one division is a reciprocal with an FMA correction,
which rounds like ``div.rn`` on every input it gets. ``MODE_XLA_GPU`` repeats :mod:`gpu_variant`
(libdevice's ``log1pf``, no contraction). Kernels are compiled with ``enable_fp_fusion=False`` so
that no other multiply-add fuses.

Exactness is checked, not assumed: at first use on a device, the kernel's value for every one
of the 2**23 mantissas is compared with the table (:func:`finishing`); on a mismatch (another GPU
architecture whose approximate instructions round differently) that device uses the table and a
warning says so. Float16/bfloat16 always use their tables (2 KiB / 256 B), which stay in L1.

Importing this module needs ``triton``; callers check :func:`.triton_support.triton_usable`.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from . import xla_cpu_f32
from .exact_numpy import F32, mul32
from .float_bits import FORMATS
from .gpu_variant import log1p_libdevice
from .normal_tables import normal_inputs, normal_table, normal_values
from .triton_support import interpreting

MODE_TABLE = 0
MODE_XLA_CPU = 1
MODE_XLA_GPU = 2
_BLOCK = 1024


@triton.jit
def _rotl(x, r: tl.constexpr):
    return (x << r) | (x >> (32 - r))


@triton.jit
def _round4(y0, y1, r0: tl.constexpr, r1: tl.constexpr, r2: tl.constexpr, r3: tl.constexpr):
    y0 = y0 + y1
    y1 = _rotl(y1, r0) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r1) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r2) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r3) ^ y0
    return y0, y1


@triton.jit
def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds on uint32 values (scalars or blocks that broadcast)."""
    k2 = k0 ^ k1 ^ tl.full((), 0x1BD11BDA, tl.uint32)
    y0 = x0 + k0
    y1 = x1 + k1
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k1
    y1 = y1 + k2 + 1
    y0, y1 = _round4(y0, y1, 17, 29, 16, 24)
    y0 = y0 + k2
    y1 = y1 + k0 + 2
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k0
    y1 = y1 + k1 + 3
    y0, y1 = _round4(y0, y1, 17, 29, 16, 24)
    y0 = y0 + k1
    y1 = y1 + k2 + 4
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k2
    y1 = y1 + k0 + 5
    return y0, y1


@triton.jit
def _f32(bits: tl.constexpr):
    return tl.full((), bits, tl.uint32).to(tl.float32, bitcast=True)


@triton.jit
def _xla_cpu_log(y):
    """XLA:CPU's float32 log for finite y > 0 (``_log_f32`` of :mod:`xla_cpu_f32`)."""
    y = tl.where(y > _f32(0x00800000), y, _f32(0x00800000))
    bits = y.to(tl.uint32, bitcast=True)
    exponent = ((bits >> 23).to(tl.int32) - 127).to(tl.float32) + 1.0
    m = ((bits & 0x807FFFFF) | 0x3F000000).to(tl.float32, bitcast=True)
    below = m < _f32(0x3F3504F3)
    xr = (m + -1.0) + tl.where(below, m, 0.0)
    e = tl.where(below, exponent - 1.0, exponent)
    a = tl.fma(xr, tl.fma(xr, _f32(0x3D9021BB), _f32(0xBDEBD1B8)), _f32(0x3DEF251A))
    b = tl.fma(xr, tl.fma(xr, _f32(0xBDFE5D4F), _f32(0x3E11E9BF)), _f32(0xBE2AAE50))
    c = tl.fma(xr, tl.fma(xr, _f32(0x3E4CCEAC), _f32(0xBE7FFFFC)), _f32(0x3EAAAAAA))
    z = xr * xr
    z3 = z * xr
    r = tl.fma(z3, tl.fma(z3, a, b), c)
    s = tl.fma(z3, r, e * _f32(0xB95E8083))
    h = tl.fma(z, -0.5, xr)
    return tl.fma(e, _f32(0x3F318000), h + s)


@triton.jit
def _div(num, den):
    """``num / den``: an approximate quotient corrected by one FMA step, which rounds like
    ``div.rn`` for every input the kernels see (checked at first use, see :func:`finishing`)."""
    q = num / den
    return tl.fma(tl.fma(-q, den, num), 1.0 / den, q)


@triton.jit
def _xla_cpu_log1p(x):
    """XLA:CPU's float32 log1p for -1 < x <= 0: a rational branch for |x| < 0.4142, else log(1 + x)."""
    num = tl.fma(x, _f32(0x383DE04B), _f32(0x3EFF40C5))
    den = tl.fma(x, 1.0, _f32(0x417101AD))
    num = tl.fma(x, num, _f32(0x40D284FA))
    den = tl.fma(x, den, _f32(0x42A6185B))
    num = tl.fma(x, num, _f32(0x41EF4B9C))
    den = tl.fma(x, den, _f32(0x435DC32D))
    num = tl.fma(x, num, _f32(0x4273CC76))
    den = tl.fma(x, den, _f32(0x439A8CA3))
    num = tl.fma(x, num, _f32(0x426473AD))
    den = tl.fma(x, den, _f32(0x43586D8A))
    num = tl.fma(x, num, _f32(0x41A05101))
    den = tl.fma(x, den, _f32(0x42707982))
    x2 = x * x
    small = x + tl.fma(x2, -0.5, (x * x2) * _div(num, den))
    return tl.where(tl.abs(x) < _f32(0x3ED413CD), small, _xla_cpu_log(x + 1.0))


@triton.jit
def _central_step(p, t, coeff: tl.constexpr, FUSED: tl.constexpr):
    if FUSED:
        return tl.fma(t, p, _f32(coeff))
    return p * t + _f32(coeff)


@triton.jit
def normal_f32(m, tail_ptr, tail_lo, tail_hi, MODE: tl.constexpr):
    """``jax.random.normal``'s float32 for 23-bit mantissas ``m`` (uint32): ``sqrt(2) * erf_inv(u)``
    with ``u = max(lo, (1.m - 1) * 2 + lo)``, as XLA:CPU (``MODE_XLA_CPU``) or XLA:GPU computes it.

    Mantissas ``m < tail_lo`` or ``m > tail_hi`` (``erf_inv``'s ``w >= 5`` branch) are read from
    ``tail_ptr``: counted from ``tail_hi + 1`` modulo 2**23, the high range then the low range
    are one contiguous run of ``2**23 - 1 - tail_hi + tail_lo`` entries.
    """
    lo = _f32(0xBF7FFFFF)
    u = ((m | 0x3F800000).to(tl.float32, bitcast=True) - 1.0) * 2.0 + lo
    u = tl.where(u > lo, u, lo)
    if MODE == 1:
        t = -_xla_cpu_log1p(u * -u) + -2.5
    else:
        t = -libdevice.log1p(u * -u) + -2.5
    p = _central_step(_f32(0x32F16588), t, 0x34B84B36, MODE == 1)
    p = _central_step(p, t, 0xB66C7357, MODE == 1)
    p = _central_step(p, t, 0xB6935AC1, MODE == 1)
    p = _central_step(p, t, 0x396532DB, MODE == 1)
    p = _central_step(p, t, 0xBAA45408, MODE == 1)
    p = _central_step(p, t, 0xBB88E4EF, MODE == 1)
    p = _central_step(p, t, 0x3E7C8F63, MODE == 1)
    p = _central_step(p, t, 0x3FC02E2F, MODE == 1)
    value = (u * p) * _f32(0x3FB504F3)
    slot = (m - (tail_hi + 1)) & 0x7FFFFF
    tail = slot < (0x7FFFFF - tail_hi + tail_lo)
    return tl.where(tail, tl.load(tail_ptr + slot.to(tl.int32, bitcast=True), mask=tail, other=0.0), value)


@triton.jit
def finish(word, table_ptr, tail_lo, tail_hi, SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr):
    """The normal of each uint32 ``word``: ``table[(word >> SHIFT) & MASK]`` (``MODE_TABLE``) or
    computed, ``table`` being then the tail table of :func:`normal_f32`."""
    mantissa = (word >> SHIFT) & MASK
    if MODE == 0:
        value = tl.load(table_ptr + mantissa.to(tl.int32, bitcast=True))
    else:
        value = normal_f32(mantissa, table_ptr, tail_lo, tail_hi, MODE)
    return value


@triton.jit
def _rows_kernel(key_ptr, table_ptr, tail_lo, tail_hi, out_ptr, n, blocks_per_row,
                 SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row = pid // blocks_per_row
    col = (pid % blocks_per_row) * BLOCK + tl.arange(0, BLOCK)
    k0 = tl.load(key_ptr + 2 * row).to(tl.uint32, bitcast=True)
    k1 = tl.load(key_ptr + 2 * row + 1).to(tl.uint32, bitcast=True)
    counter = col.to(tl.uint32, bitcast=True)
    y0, y1 = threefry2x32(k0, k1, tl.zeros_like(counter), counter)
    value = finish(y0 ^ y1, table_ptr, tail_lo, tail_hi, SHIFT, MASK, MODE)
    tl.store(out_ptr + row.to(tl.int64) * n + col, value, mask=col < n)


@triton.jit
def _mantissa_kernel(tail_ptr, tail_lo, tail_hi, out_ptr, start, count, MODE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    value = normal_f32((start + offs).to(tl.uint32, bitcast=True), tail_ptr, tail_lo, tail_hi, MODE)
    tl.store(out_ptr + offs, value, mask=offs < count)


@dataclass(frozen=True)
class Finishing:
    """How the kernels turn words into normals: ``mode`` (a ``MODE_*``), ``table`` (the whole
    lookup table for ``MODE_TABLE``, else the tail table) and the tail bounds ``lo``/``hi``."""

    mode: int
    table: torch.Tensor
    lo: int = 0
    hi: int = 0


# The tail (w >= 5) lies within this many mantissas of either end: there |u| > 0.984, so w > 3.4.
_TAIL_WINDOW = 1 << 16


def _central(index: np.ndarray, variant: str) -> np.ndarray:
    """Whether ``erf_inv`` takes its ``w < 5`` branch for each float32 mantissa, per the emulations."""
    u = normal_inputs(torch.from_numpy(index.astype(np.int32)), torch.float32).numpy()
    square = mul32(u, -u)
    if variant == "cpu":
        return xla_cpu_f32.log1p_f32(square) > F32(-5.0)
    return -log1p_libdevice(square) < F32(5.0)


@functools.cache
def _tail(variant: str, device: torch.device) -> Finishing:
    low = np.arange(_TAIL_WINDOW)
    high = np.arange((1 << 23) - _TAIL_WINDOW, 1 << 23)
    low_central, high_central = _central(low, variant), _central(high, variant)
    lo = int(np.argmax(low_central))
    hi = int(high[len(high) - 1 - np.argmax(high_central[::-1])])
    if not (low_central[lo:].all() and not low_central[:lo].any()
            and high_central[:hi - high[0] + 1].all() and not high_central[hi - high[0] + 1:].any()):
        raise AssertionError(f"erf_inv's tail is not two contiguous mantissa ranges for variant {variant!r}")
    index = torch.from_numpy(np.concatenate([np.arange(hi + 1, 1 << 23), np.arange(lo)]).astype(np.int32))
    sqrt_device = device if (variant == "gpu" and device.type == "cuda") else None
    table = normal_values(index, torch.float32, variant, sqrt_device=sqrt_device).to(device)
    return Finishing(MODE_XLA_CPU if variant == "cpu" else MODE_XLA_GPU, table, lo, hi)


def _launch_mantissas(finishing: Finishing, out: torch.Tensor, start: int) -> None:
    _mantissa_kernel[(triton.cdiv(out.numel(), _BLOCK),)](
        finishing.table, finishing.lo, finishing.hi, out, start, out.numel(), MODE=finishing.mode, BLOCK=_BLOCK,
        enable_fp_fusion=False,
    )


@functools.cache
def _float32_finishing(variant: str, device: torch.device) -> Finishing:
    table = normal_table(torch.float32, device, variant)
    if interpreting():
        return Finishing(MODE_TABLE, table)
    computed = _tail(variant, device)
    every = torch.empty(1 << 23, dtype=torch.float32, device=device)
    _launch_mantissas(computed, every, 0)
    wrong = int((every.view(torch.int32) != table.view(torch.int32)).sum())
    if wrong:
        warnings.warn(f"eggroll_torch.random: the computed float32 normal ({variant} variant) differs from the "
                      f"exact table on {wrong} of 2**23 mantissas on {torch.cuda.get_device_name(device)}; "
                      "this device reads the table instead (same values, slower)", RuntimeWarning, stacklevel=3)
        return Finishing(MODE_TABLE, table)
    return computed


def _cuda_device(device) -> torch.device:
    """``device`` with its index: the caches below are per physical device."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def launch_shape(mode: int, length: int) -> tuple[int, int]:
    """``(BLOCK, num_warps)`` for a kernel drawing ``length`` values per program row.

    16 values per thread for the table modes, whose hash leaves issue slots idle while lookups
    are in flight, 8 for computed float32, whose arithmetic fills them (measured on an H100:
    bfloat16 draws 1.9e11 -> 3.1e11 normals/s going from 8 to 16; float32 is best at 8).
    """
    per_thread = 16 if mode == MODE_TABLE else 8
    block = min(128 * per_thread, triton.next_power_of_2(length))
    return block, max(1, block // (32 * per_thread))


def finishing(dtype: torch.dtype, variant: str, device) -> Finishing:
    """How the kernels finish words of ``dtype`` for ``variant`` on ``device`` (cached).

    Float32 is computed once the kernel has reproduced the table on every mantissa of this
    device (first use: a table build and one 2**23-value launch); under Triton's CPU interpreter,
    which evaluates ``tl.fma`` as a separately rounded multiply and add, it is read from the table.
    """
    device = _cuda_device(device)
    if dtype == torch.float32:
        return _float32_finishing(variant, device)
    return Finishing(MODE_TABLE, normal_table(dtype, device, variant))


def normal_rows(keys: torch.Tensor, out: torch.Tensor, *, variant: str) -> None:
    """Fill the contiguous CUDA tensor ``out`` ``(B, n)``, ``n < 2**31``: ``out[b, j]`` is the
    normal of key ``b`` (``keys`` ``(B, 2)`` uint32) at position ``j`` of the partitionable layout.
    """
    rows, n = out.shape
    how = finishing(out.dtype, variant, out.device)
    fmt = FORMATS[out.dtype]
    block, warps = launch_shape(how.mode, n)
    blocks = triton.cdiv(n, block)
    _rows_kernel[(rows * blocks,)](
        keys.contiguous().view(torch.int32), how.table, how.lo, how.hi, out, n, blocks,
        SHIFT=fmt.shift, MASK=fmt.mask, MODE=how.mode, BLOCK=block, num_warps=warps, enable_fp_fusion=False,
    )


def normal_f32_mantissas(start: int, stop: int, variant: str, device) -> torch.Tensor:
    """The float32 normal of every mantissa in ``[start, stop)`` as the kernels compute it on
    ``device`` (computed central branch, tail table), without the first-use check of :func:`finishing`."""
    device = _cuda_device(device)
    out = torch.empty(stop - start, dtype=torch.float32, device=device)
    _launch_mantissas(_tail(variant, device), out, start)
    return out
