"""Triton kernels for CUDA: ``jax.random.normal`` for a batch of keys, hashed and finished in
one pass, bit for bit equal to the other backends of :mod:`eggroll_torch.random`.

Float32 values are mostly computed, not looked up: reading every value from the 32 MiB table
of :mod:`normal_tables` is a random L2 read each (measured on an H100: 0.9e11 values/s). The
kernels compute one branch with straight-line arithmetic and read the table only where a value
leaves it (:func:`_table_where`): ``erf_inv``'s ``w >= 5`` tail (0.34% of the mantissas), whose
square root and coefficient selects would otherwise run for every value, and for the ``"cpu"``
variant also the ``log(1 + x)`` branch of XLA:CPU's log1p (35.6%; computing both log1p branches
for every value was slower: 1.8e11 against 2.4e11 normals/s on an H100). ``MODE_XLA_CPU``
repeats :mod:`xla_cpu_f32` operation for operation (``tl.fma`` where XLA:CPU contracts); its one
division is a hardware reciprocal with an FMA correction. ``MODE_XLA_GPU`` repeats
:mod:`gpu_variant` (libdevice's ``log1pf``, no contraction). Kernels are compiled with
``enable_fp_fusion=False`` so that no other multiply-add fuses. Hash and arithmetic are
issue-bound on sm_90 (about 120 instructions per value, 68 of them threefry), so the range
checks the inputs never need (``div.full``'s, libdevice's special values, XLA's clamps) are
left out and negations are ``neg.f32``, which folds into the next instruction.

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

import torch
import triton
import triton.language as tl

from .float_bits import FORMATS
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
def _horner(x, COEFFS: tl.constexpr, FUSED: tl.constexpr):
    """``COEFFS[0] * x**n + ... + COEFFS[n]`` by Horner's rule (coefficients as float32 bit
    patterns, highest degree first), each step one FMA (``FUSED``) or a multiply and an add."""
    p = _f32(COEFFS[0])
    for i in tl.static_range(1, len(COEFFS)):
        if FUSED:
            p = tl.fma(p, x, _f32(COEFFS[i]))
        else:
            p = p * x + _f32(COEFFS[i])
    return p


@triton.jit
def _neg(x):
    """``-x`` as ``neg.f32``, which ptxas folds into the consumer's operand; Triton's ``-x`` is
    ``0 - x`` (an instruction of its own, and not the same float for ``x = +0``)."""
    return tl.inline_asm_elementwise("neg.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _div(num, den):
    """``num / den`` for the positive, normal ``den`` of :func:`_xla_cpu_log1p_rational` (where its
    value is kept): the hardware reciprocal and one FMA correction, which round like ``div.rn``
    for every such input (checked at first use, see :func:`finishing`; ``div.full.f32`` would add
    range checks)."""
    r = tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [den], dtype=tl.float32,
                                  is_pure=True, pack=1)
    q = num * r
    return tl.fma(tl.fma(_neg(q), den, num), r, q)


@triton.jit
def _xla_cpu_log1p_rational(x):
    """XLA:CPU's float32 log1p on its rational branch, -0.4142 < x <= 0 (``log1p_f32`` of
    :mod:`xla_cpu_f32`); the kernels read the values of the ``log(1 + x)`` branch from a table."""
    num = _horner(x, (0x383DE04B, 0x3EFF40C5, 0x40D284FA, 0x41EF4B9C, 0x4273CC76, 0x426473AD, 0x41A05101), True)
    den = _horner(x, (0x3F800000, 0x417101AD, 0x42A6185B, 0x435DC32D, 0x439A8CA3, 0x43586D8A, 0x42707982), True)
    x2 = x * x
    return x + tl.fma(x2, -0.5, (x * x2) * _div(num, den))


@triton.jit
def _libdevice_log1p(a):
    """libdevice's ``__nv_log1pf`` (:func:`gpu_variant.log1p_libdevice`, operation for operation)
    for -1 < a < 0, without the special-value checks the kernels' inputs never need."""
    one = tl.inline_asm_elementwise("add.rz.f32 $0, $1, 0f3F800000;", "=r,r", [a], dtype=tl.float32,
                                    is_pure=True, pack=1)
    e = (one.to(tl.int32, bitcast=True) - 0x3F400000) & -(1 << 23)
    scaled = (a.to(tl.int32, bitcast=True) - e).to(tl.float32, bitcast=True)
    m = scaled + tl.fma(0.25, (0x40800000 - e).to(tl.float32, bitcast=True), -1.0)
    r = _horner(m, (0xBD39BF78, 0x3DD80012, 0xBE0778E0, 0x3E146475, 0xBE2A68DD, 0x3E4CAF9E, 0xBE800042,
                    0x3EAAAAE6, 0xBF000000), True)
    r = tl.fma(r * m, m, m)
    # e * 2**-23 * ln2 with ln2 pre-scaled: the same exact product, one multiply fewer.
    return tl.fma(e.to(tl.float32), _f32(0x33B17218), r)


@triton.jit
def _table_where(word, value, key, table_ptr, CPU: tl.constexpr):
    """``table_ptr[word >> 9]`` where the kernel leaves its branch, else ``value``: ``key <= -0.4142``
    (``CPU``: ``key`` is log1p's argument, XLA:CPU keeps its rational branch for ``|x| < 0.4142``)
    or ``key >= 2.5`` (``key`` is ``t = w - 2.5``, exact near ``w = 5``, so this is ``w >= 5``).

    A predicated load in inline PTX: as a ``tl.load`` this gather would fix the layout of the
    whole computation to one element per thread, and the vectorized store would then go
    through shared memory (counted in the SASS: 13 of 154 instructions per value on sm_90).
    """
    if CPU:
        test: tl.constexpr = "setp.le.f32 p, $3, 0fBED413CD;"
    else:
        test: tl.constexpr = "setp.ge.f32 p, $3, 0f40200000;"
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; .reg .b32 s; .reg .b64 a, d; shr.u32 s, $1, 9; mul.wide.u32 d, s, 4; add.u64 a, $4, d; "
        "mov.b32 $0, $2; " + test + " @p ld.global.nc.b32 $0, [a]; }",
        "=r,r,r,r,l", [word, value, key, table_ptr.to(tl.uint64, bitcast=True)], dtype=tl.float32,
        is_pure=True, pack=1)


@triton.jit
def normal_f32(word, table_ptr, MODE: tl.constexpr):
    """``jax.random.normal``'s float32 for uint32 ``word``s, whose 23 high bits are the mantissa
    ``m``: ``sqrt(2) * erf_inv(u)`` with ``u = max(lo, (1.m - 1) * 2 + lo)``, as XLA:CPU
    (``MODE_XLA_CPU``) or XLA:GPU computes it.

    ``u`` is formed as ``(2.m - 2) + lo``, the same float (both products are exact), and
    ``max(lo, .)`` is dropped: the sum of ``lo`` and a non-negative float never rounds below ``lo``.
    Where ``erf_inv`` leaves the branch computed here (``"gpu"``: its ``w >= 5`` tail; ``"cpu"``:
    also log1p's ``log(1 + x)`` branch), the value is read from the full table ``table_ptr``.
    """
    u = ((word >> 9) | 0x40000000).to(tl.float32, bitcast=True) + -2.0 + _f32(0xBF7FFFFF)
    x = u * _neg(u)
    if MODE == 1:
        t = _neg(_xla_cpu_log1p_rational(x)) + -2.5
    else:
        t = _neg(_libdevice_log1p(x)) + -2.5
    # XLA:CPU contracts erf_inv's multiply-adds into FMAs, XLA:GPU leaves them separate.
    p = _horner(t, (0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1, 0x396532DB, 0xBAA45408, 0xBB88E4EF,
                    0x3E7C8F63, 0x3FC02E2F), MODE == 1)
    value = (u * p) * _f32(0x3FB504F3)
    if MODE == 1:
        value = _table_where(word, value, x, table_ptr, True)
    else:
        value = _table_where(word, value, t, table_ptr, False)
    return value


@triton.jit
def finish(word, table_ptr, SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr):
    """The normal of each uint32 ``word``: ``table[(word >> SHIFT) & MASK]`` (``MODE_TABLE``) or
    computed, with the table for the values outside the computed branch (:func:`normal_f32`)."""
    if MODE == 0:
        value = tl.load(table_ptr + ((word >> SHIFT) & MASK).to(tl.int32, bitcast=True))
    else:
        value = normal_f32(word, table_ptr, MODE)
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
def _threefry_kernel(k0_ptr, k1_ptr, x0_ptr, x1_ptr, y0_ptr, y1_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n
    k0 = tl.load(k0_ptr + offs, mask=valid).to(tl.uint32, bitcast=True)
    k1 = tl.load(k1_ptr + offs, mask=valid).to(tl.uint32, bitcast=True)
    x0 = tl.load(x0_ptr + offs, mask=valid).to(tl.uint32, bitcast=True)
    x1 = tl.load(x1_ptr + offs, mask=valid).to(tl.uint32, bitcast=True)
    y0, y1 = threefry2x32(k0, k1, x0, x1)
    tl.store(y0_ptr + offs, y0.to(tl.int32, bitcast=True), mask=valid)
    tl.store(y1_ptr + offs, y1.to(tl.int32, bitcast=True), mask=valid)


@triton.jit
def _mantissa_kernel(table_ptr, out_ptr, start, count, MODE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    value = normal_f32((start + offs).to(tl.uint32, bitcast=True) << 9, table_ptr, MODE)
    tl.store(out_ptr + offs, value, mask=offs < count)


@dataclass(frozen=True)
class Finishing:
    """How the kernels turn words into normals: ``mode`` (a ``MODE_*``) and the exact ``table``
    of ``dtype``'s normals (read for every value in ``MODE_TABLE``, else outside the computed branch)."""

    mode: int
    table: torch.Tensor


def _launch_mantissas(finishing: Finishing, out: torch.Tensor, start: int) -> None:
    _mantissa_kernel[(triton.cdiv(out.numel(), _BLOCK),)](
        finishing.table, out, start, out.numel(), MODE=finishing.mode, BLOCK=_BLOCK, enable_fp_fusion=False,
    )


def _computed(variant: str, table: torch.Tensor) -> Finishing:
    return Finishing(MODE_XLA_CPU if variant == "cpu" else MODE_XLA_GPU, table)


@functools.cache
def _float32_finishing(variant: str, device: torch.device) -> Finishing:
    table = normal_table(torch.float32, device, variant)
    if interpreting():
        return Finishing(MODE_TABLE, table)
    computed = _computed(variant, table)
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


def launch_shape(length: int) -> tuple[int, int]:
    """``(BLOCK, num_warps)`` for a kernel drawing ``length`` values per program row: 16 values
    per thread, 4 warps. Measured on an H100: bfloat16 (table) draws 1.9e11 -> 3.1e11 normals/s
    going from 8 to 16 per thread; computed float32 2.22e11 -> 2.33e11 ("gpu") and 2.35e11 ->
    2.42e11 ("cpu"), 4 per thread being slower still.
    """
    block = min(2048, triton.next_power_of_2(length))
    return block, max(1, block // 512)


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
    block, warps = launch_shape(n)
    blocks = triton.cdiv(n, block)
    _rows_kernel[(rows * blocks,)](
        keys.contiguous().view(torch.int32), how.table, out, n, blocks,
        SHIFT=fmt.shift, MASK=fmt.mask, MODE=how.mode, BLOCK=block, num_warps=warps, enable_fp_fusion=False,
    )


def threefry_words(words: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The hash of :func:`eggroll_torch.random.threefry.threefry2x32` in one launch, on
    contiguous CUDA int32 tensors ``(k0, k1, x0, x1)`` of one shape; returns new ``(y0, y1)``."""
    y0, y1 = torch.empty_like(words[0]), torch.empty_like(words[0])
    n = y0.numel()
    _threefry_kernel[(triton.cdiv(n, _BLOCK),)](*words, y0, y1, n, BLOCK=_BLOCK)
    return y0, y1


def normal_f32_mantissas(start: int, stop: int, variant: str, device) -> torch.Tensor:
    """The float32 normal of every mantissa in ``[start, stop)`` as the kernels compute it on
    ``device`` (computed branch, the rest from the table), without the first-use check of :func:`finishing`."""
    device = _cuda_device(device)
    out = torch.empty(stop - start, dtype=torch.float32, device=device)
    _launch_mantissas(_computed(variant, normal_table(torch.float32, device, variant)), out, start)
    return out
