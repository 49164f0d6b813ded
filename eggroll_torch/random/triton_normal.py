"""Triton kernels for CUDA: ``jax.random.normal`` for a batch of keys, hashed and finished in
one pass, bit for bit equal to the other backends of :mod:`eggroll_torch.random`.

Float32 values are computed, not looked up: the 32 MiB table of :mod:`normal_tables` turns every
value into a random L2 read, which caps throughput, while the arithmetic overlaps the integer
hash for free. ``MODE_XLA_CPU`` repeats :mod:`xla_cpu_f32` operation for operation (``tl.fma``
where XLA:CPU contracts, correctly rounded ``div_rn``/``sqrt_rn``); ``MODE_XLA_GPU`` repeats
:mod:`gpu_variant` (libdevice's ``log1pf``, no contraction, the GPU's ``sqrt.approx.f32``).
Kernels are compiled with ``enable_fp_fusion=False`` so that no other multiply-add fuses.
Both are checked against the tables on all 2**23 mantissas (``tests/random/test_random_cuda.py``).
Float16/bfloat16 use their tables (2 KiB / 256 B), which stay in L1.

Importing this module needs ``triton``; callers check :func:`.triton_support.triton_usable`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from .normal_tables import normal_table
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
    small = x + tl.fma(x2, -0.5, (x * x2) * tl.math.div_rn(num, den))
    return tl.where(tl.abs(x) < _f32(0x3ED413CD), small, _xla_cpu_log(x + 1.0))


@triton.jit
def _sqrt_approx(x):
    """The GPU's ``sqrt.approx.f32``, which XLA:GPU's square root compiles to."""
    bits = tl.inline_asm_elementwise("sqrt.approx.f32 $0, $1;", "=r,r", [x.to(tl.uint32, bitcast=True)],
                                     dtype=tl.uint32, is_pure=True, pack=1)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _erf_inv_step(p, t, central, c_bits: tl.constexpr, t_bits: tl.constexpr, FUSED: tl.constexpr):
    coeff = tl.where(central, _f32(c_bits), _f32(t_bits))
    if FUSED:
        return tl.fma(t, p, coeff)
    return p * t + coeff


@triton.jit
def normal_f32(m, MODE: tl.constexpr):
    """``jax.random.normal``'s float32 for 23-bit mantissas ``m`` (uint32): ``sqrt(2) * erf_inv(u)``
    with ``u = max(lo, (1.m - 1) * 2 + lo)``, as XLA:CPU (``MODE_XLA_CPU``) or XLA:GPU computes it."""
    lo = _f32(0xBF7FFFFF)
    u = ((m | 0x3F800000).to(tl.float32, bitcast=True) - 1.0) * 2.0 + lo
    u = tl.where(u > lo, u, lo)
    if MODE == 1:
        w = -_xla_cpu_log1p(u * -u)
        root = tl.sqrt_rn(w)
    else:
        w = -libdevice.log1p(u * -u)
        root = _sqrt_approx(w)
    central = w < 5.0
    t = tl.where(central, w + -2.5, root + -3.0)
    p = tl.where(central, _f32(0x32F16588), _f32(0xB951F09B))
    p = _erf_inv_step(p, t, central, 0x34B84B36, 0x38D3B56B, MODE == 1)
    p = _erf_inv_step(p, t, central, 0xB66C7357, 0x3AB0DC72, MODE == 1)
    p = _erf_inv_step(p, t, central, 0xB6935AC1, 0xBB70BDE7, MODE == 1)
    p = _erf_inv_step(p, t, central, 0x396532DB, 0x3BBC127B, MODE == 1)
    p = _erf_inv_step(p, t, central, 0xBAA45408, 0xBBF9C5D7, MODE == 1)
    p = _erf_inv_step(p, t, central, 0xBB88E4EF, 0x3C1AA57E, MODE == 1)
    p = _erf_inv_step(p, t, central, 0x3E7C8F63, 0x3F8036DB, MODE == 1)
    p = _erf_inv_step(p, t, central, 0x3FC02E2F, 0x40354F7E, MODE == 1)
    return (u * p) * _f32(0x3FB504F3)


@triton.jit
def finish(word, table_ptr, SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr):
    """The normal of each uint32 ``word``: computed (float32 modes) or ``table[(word >> SHIFT) & MASK]``."""
    mantissa = (word >> SHIFT) & MASK
    if MODE == 0:
        value = tl.load(table_ptr + mantissa.to(tl.int32, bitcast=True))
    else:
        value = normal_f32(mantissa, MODE)
    return value


@triton.jit
def _rows_kernel(key_ptr, table_ptr, out_ptr, n, blocks_per_row,
                 SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row = pid // blocks_per_row
    col = (pid % blocks_per_row) * BLOCK + tl.arange(0, BLOCK)
    k0 = tl.load(key_ptr + 2 * row).to(tl.uint32, bitcast=True)
    k1 = tl.load(key_ptr + 2 * row + 1).to(tl.uint32, bitcast=True)
    counter = col.to(tl.uint32, bitcast=True)
    y0, y1 = threefry2x32(k0, k1, tl.zeros_like(counter), counter)
    value = finish(y0 ^ y1, table_ptr, SHIFT, MASK, MODE)
    tl.store(out_ptr + row.to(tl.int64) * n + col, value, mask=col < n)


@triton.jit
def _mantissa_kernel(out_ptr, start, count, MODE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    value = normal_f32((start + offs).to(tl.uint32, bitcast=True), MODE)
    tl.store(out_ptr + offs, value, mask=offs < count)


def finishing(dtype: torch.dtype, variant: str, device) -> tuple[int, torch.Tensor | None]:
    """How the kernels turn words of ``dtype`` into normals for ``variant``: ``(MODE_*, table)``,
    the table being None when the values are computed.

    Under Triton's CPU interpreter float32 is read from the table too: the interpreter evaluates
    ``tl.fma`` as a separately rounded multiply and add, so it cannot run the computed modes.
    """
    if dtype == torch.float32 and not interpreting():
        return (MODE_XLA_CPU if variant == "cpu" else MODE_XLA_GPU), None
    return MODE_TABLE, normal_table(dtype, device, variant)


def normal_rows(keys: torch.Tensor, out: torch.Tensor, *, variant: str, shift: int, mask: int) -> None:
    """Fill the contiguous CUDA tensor ``out`` ``(B, n)``, ``n < 2**31``: ``out[b, j]`` is the
    normal of key ``b`` (``keys`` ``(B, 2)`` uint32) at position ``j`` of the partitionable layout;
    ``shift``/``mask`` pick the mantissa bits of a hashed word for ``out.dtype``.
    """
    rows, n = out.shape
    kernel_mode, table = finishing(out.dtype, variant, out.device)
    blocks = triton.cdiv(n, _BLOCK)
    _rows_kernel[(rows * blocks,)](
        keys.contiguous().view(torch.int32), out if table is None else table, out, n, blocks,
        SHIFT=shift, MASK=mask, MODE=kernel_mode, BLOCK=_BLOCK, enable_fp_fusion=False,
    )


def normal_f32_mantissas(start: int, stop: int, variant: str, device) -> torch.Tensor:
    """The float32 normal of every mantissa in ``[start, stop)``, computed on ``device`` by the
    kernels' own arithmetic: what the exhaustive checks compare with the tables."""
    out = torch.empty(stop - start, dtype=torch.float32, device=device)
    _mantissa_kernel[(triton.cdiv(out.numel(), _BLOCK),)](
        out, start, out.numel(), MODE=MODE_XLA_CPU if variant == "cpu" else MODE_XLA_GPU, BLOCK=_BLOCK,
        enable_fp_fusion=False,
    )
    return out
