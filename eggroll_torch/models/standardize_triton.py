"""The reference's standardisation ``(x - mean) / sqrt(var + eps)`` over rows, in one Triton launch.

:func:`eggroll_torch.models.common.layer_norm` (every LayerNorm of the models) and RWKV-7's
GroupNorm standardise with the reference's roundings, op by op: about twenty kernels per norm on
the GPU for a bfloat16 input (casts to float32, two sums, the rounding of each statistic, the
reciprocal), three norms a layer in RWKV-7, each launched for every generated token. Here one
program standardises ``ROWS`` rows of ``C`` channels with the same operations and roundings:

- ``mean = sum(x) * r`` with ``r = 1 / C`` rounded to float32, in float32;
- ``var = sum((x - mean)^2) * r``, in float32, rounded to the input dtype;
- ``spread = sqrt(var + eps)``, the sum and the root each rounded to the input dtype;
- ``(x - mean) * (1 / spread)``: the difference in the input dtype (``mean`` rounded to it), the
  reciprocal in float32, the product rounded to the input dtype.

:func:`add_standardize` first adds a residual (the sum rounded to the input dtype, as torch's
``x + residual``) and hands back that sum too, so a residual stream's add and the LayerNorm that
reads it are one launch.

Only the order of the two sums differs from torch's (the kernel is compiled without fused
multiply-adds, which would skip the rounding of a product). For bfloat16 the roundings are done on the
float32 bits (round to nearest, ties to even), and bfloat16 values travel as their 16-bit
patterns, so the kernel is plain integer and float32 arithmetic, which Triton's CPU interpreter
also runs.

Importing this module needs ``triton``; callers check :func:`supports` after
:func:`eggroll_torch.random.triton_support.triton_usable`.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..numerics import _reciprocal

__all__ = ["supports", "standardize", "supports_residual", "add_standardize"]

_DTYPES = (torch.float32, torch.bfloat16)
# Widest row one program holds in registers.
_MAX_CHANNELS = 16384
# Elements per program: several short rows (GroupNorm's heads) share one.
_ELEMENTS = 4096
# Compiled without fused multiply-adds: torch rounds each product (the squares, sum * 1/C)
# before the sum or difference that follows it, and so must the kernel.
_OPTIONS = {"enable_fp_fusion": False}
# Kernels that call libdevice link it without flushing subnormals, as torch's CUDA build (no -ftz)
# computes its transcendentals.
_LIBDEVICE_OPTIONS = {"enable_reflect_ftz": False}


@triton.jit
def _round_bf16(v):
    """``v`` (float32) rounded to the nearest bfloat16 (ties to even), still as float32; NaN stays."""
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).to(tl.float32, bitcast=True)
    return tl.where(v != v, v, rounded)


@triton.jit
def _round(value, IS_BF16: tl.constexpr):
    """``value`` (float32) rounded to bfloat16 when ``IS_BF16``, else as it is (float32 ops round
    themselves)."""
    if IS_BF16:
        value = _round_bf16(value)
    return value


@triton.jit
def _head_block(T, H, S: tl.constexpr, BLOCK_H: tl.constexpr):
    """This program's token row ``(*lead, T, H * S)`` as ``BLOCK_H x S`` (heads x channels):
    ``(lead index as int64, channel offsets, mask of real heads, element offsets)``."""
    row = tl.program_id(0)
    heads = tl.arange(0, BLOCK_H)
    channels = heads[:, None] * S + tl.arange(0, S)[None, :]
    return (row // T).to(tl.int64), channels, heads[:, None] < H, row.to(tl.int64) * H * S + channels


@triton.jit
def _load_float32(ptr, at, mask, IS_BF16: tl.constexpr):
    """The values at ``ptr + at`` as float32, zero where ``mask`` is off (bfloat16 read as its
    16-bit patterns)."""
    if IS_BF16:
        half = tl.load(ptr + at, mask=mask, other=0).to(tl.uint16, bitcast=True)
        value = (half.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        value = tl.load(ptr + at, mask=mask, other=0.0)
    return value


@triton.jit
def _store(ptr, at, value, mask, IS_BF16: tl.constexpr):
    """Stores float32 ``value``, already rounded to bfloat16 when ``IS_BF16`` (as its 16-bit pattern)."""
    if IS_BF16:
        tl.store(ptr + at, (value.to(tl.uint32, bitcast=True) >> 16).to(tl.uint16).to(tl.int16, bitcast=True),
                 mask=mask)
    else:
        tl.store(ptr + at, value, mask=mask)


@triton.jit
def _standardized(x, mask, reciprocal, eps, IS_BF16: tl.constexpr):
    """Each row of the 2-D float32 block ``x`` (zero where ``mask`` is off) standardised over its
    ``mask``-ed columns with the roundings of the module docstring, as float32 values."""
    mean = tl.sum(x, axis=1) * reciprocal
    centered = tl.where(mask, x - mean[:, None], 0.0)
    var = tl.sum(centered * centered, axis=1) * reciprocal
    if IS_BF16:
        spread = _round_bf16(tl.sqrt_rn(_round_bf16(_round_bf16(var) + eps)))
        difference = _round_bf16(x - _round_bf16(mean)[:, None])
        out = _round_bf16(difference * tl.div_rn(1.0, spread)[:, None])
    else:
        spread = tl.sqrt_rn(var + eps)
        out = (x - mean[:, None]) * tl.div_rn(1.0, spread)[:, None]
    return out


@triton.jit
def _standardize_kernel(x_ptr, out_ptr, weight_ptr, bias_ptr, residual_ptr, sum_ptr, n_rows, C, x_stride, out_stride,
                        residual_stride, rows_per_lead, weight_stride_l, bias_stride_l, reciprocal, eps,
                        IS_BF16: tl.constexpr, AFFINE: tl.constexpr, RESIDUAL: tl.constexpr, ROWS: tl.constexpr,
                        BLOCK: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    mask = (rows[:, None] < n_rows) & (cols[None, :] < C)
    x = _load_float32(x_ptr, rows[:, None].to(tl.int64) * x_stride + cols[None, :], mask, IS_BF16)
    if RESIDUAL:
        residual = _load_float32(residual_ptr, rows[:, None].to(tl.int64) * residual_stride + cols[None, :], mask,
                                 IS_BF16)
        x = _round(x + residual, IS_BF16)
        _store(sum_ptr, rows[:, None].to(tl.int64) * out_stride + cols[None, :], x, mask, IS_BF16)
    out = _standardized(x, mask, reciprocal, eps, IS_BF16)
    if AFFINE:
        lead = (rows // rows_per_lead).to(tl.int64)[:, None]
        weight = _load_float32(weight_ptr, lead * weight_stride_l + cols[None, :], mask, IS_BF16)
        bias = _load_float32(bias_ptr, lead * bias_stride_l + cols[None, :], mask, IS_BF16)
        out = _round(_round(out * weight, IS_BF16) + bias, IS_BF16)
    _store(out_ptr, rows[:, None].to(tl.int64) * out_stride + cols[None, :], out, mask, IS_BF16)


def _as_bits(t: torch.Tensor) -> torch.Tensor:
    """What the kernels are handed: a bfloat16 tensor as its 16-bit patterns, others as they are."""
    return t.view(torch.int16) if t.dtype == torch.bfloat16 else t


@functools.lru_cache(maxsize=64)
def _rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype``, as a Python float (cached: a model asks for the same few
    epsilons at every norm of every token)."""
    return float(torch.tensor(value, dtype=dtype))


def supports(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> bool:
    """Whether :func:`standardize` takes ``x``: float32 or bfloat16, at most 16384 channels in
    its last axis, at least one element, no autograd history wanted; with ``weight`` and
    ``bias``, both of ``x``'s dtype and device, each contiguous and either shared ``(C,)`` or one
    row per leading index of ``x (*lead, T, C)`` (``(*lead, 1, C)``)."""
    if not (x.dtype in _DTYPES and x.ndim >= 1 and 0 < x.shape[-1] <= _MAX_CHANNELS and x.numel() > 0
            and not (x.requires_grad and torch.is_grad_enabled())):
        return False
    if weight is None and bias is None:
        return True
    if weight is None or bias is None:
        return False
    return all(p.dtype == x.dtype and p.device == x.device and not (p.requires_grad and torch.is_grad_enabled())
               and _lead_stride(p, x) is not None for p in (weight, bias))


def _lead_stride(param: torch.Tensor, x: torch.Tensor) -> int | None:
    """0 for a shared contiguous ``(C,)`` parameter, ``C`` for a contiguous ``(*lead, 1, C)`` one
    (``x (*lead, T, C)``), else None."""
    channels = x.shape[-1]
    if not param.is_contiguous():
        return None
    if param.shape == (channels,):
        return 0
    if x.ndim >= 3 and param.shape == (*x.shape[:-2], 1, channels):
        return channels
    return None


def standardize(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the last axis of ``x (..., C)`` (population
    variance, ``eps`` rounded to ``x``'s dtype as the reference's weak scalar is), with the
    roundings of :func:`eggroll_torch.models.common.layer_norm`, then, given ``weight`` and
    ``bias``, ``* weight + bias`` (each rounded to the dtype); a new tensor shaped and typed like
    ``x``. The inputs must satisfy :func:`supports`."""
    if not supports(x, weight, bias):
        raise ValueError(f"standardize takes float32 or bfloat16 x with 1 to {_MAX_CHANNELS} channels and no "
                         f"autograd, and weight and bias of its dtype shaped (C,) or (*lead, 1, C); got "
                         f"{x.dtype} of shape {tuple(x.shape)} (use models.common.layer_norm)")
    return _launch(x, None, eps, weight, bias)[1]


def supports_residual(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None = None,
                      bias: torch.Tensor | None = None) -> bool:
    """Whether :func:`add_standardize` takes these inputs: :func:`supports` of ``x``, ``weight``,
    ``bias`` and a ``residual`` of ``x``'s shape, dtype and device, no autograd history wanted."""
    return (supports(x, weight, bias) and residual.shape == x.shape and residual.dtype == x.dtype
            and residual.device == x.device and not (residual.requires_grad and torch.is_grad_enabled()))


def add_standardize(x: torch.Tensor, residual: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, standardize(total, eps, weight, bias))`` with ``total = x + residual`` rounded to
    the dtype: a residual stream's sum and the LayerNorm that reads it, in one launch instead of
    two. The inputs must satisfy :func:`supports_residual`."""
    if not supports_residual(x, residual, weight, bias):
        raise ValueError(f"add_standardize takes float32 or bfloat16 x and residual of one shape (1 to "
                         f"{_MAX_CHANNELS} channels), dtype and device, no autograd, and weight and bias of their "
                         f"dtype shaped (C,) or (*lead, 1, C); got x {x.dtype} {tuple(x.shape)}, residual "
                         f"{residual.dtype} {tuple(residual.shape)} (use x + residual and models.common.layer_norm)")
    return _launch(x, residual, eps, weight, bias)


def _contiguous_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``(rows, C)`` with unit channel stride (a view where one exists)."""
    rows = x.reshape(-1, x.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def _launch(x, residual, eps, weight, bias) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The kernel over ``x`` (plus ``residual`` when given): ``(sum or None, standardised)``."""
    channels = x.shape[-1]
    rows = _contiguous_rows(x)
    out = torch.empty((rows.shape[0], channels), dtype=x.dtype, device=x.device)
    added = residual is not None
    total = torch.empty_like(out) if added else None
    extra = _contiguous_rows(residual) if added else rows
    block = triton.next_power_of_2(channels)
    per_program = max(1, min(_ELEMENTS // block, triton.next_power_of_2(rows.shape[0])))
    bf16 = x.dtype == torch.bfloat16
    # Both constants exactly as the reference rounds them: 1 / C in float32, eps in x's dtype.
    reciprocal = _reciprocal(channels, torch.float32)
    eps_value = _rounded(eps, x.dtype)
    affine = weight is not None
    rows_per_lead = x.shape[-2] if x.ndim >= 2 else 1
    _standardize_kernel[(triton.cdiv(rows.shape[0], per_program),)](
        _as_bits(rows), _as_bits(out), _as_bits(weight if affine else rows), _as_bits(bias if affine else rows),
        _as_bits(extra), _as_bits(total if added else out), rows.shape[0], channels, rows.stride(0), out.stride(0),
        extra.stride(0), rows_per_lead, _lead_stride(weight, x) if affine else 0,
        _lead_stride(bias, x) if affine else 0, reciprocal, eps_value, IS_BF16=bf16, AFFINE=affine,
        RESIDUAL=added, ROWS=per_program, BLOCK=block, num_warps=4 if block * per_program <= 4096 else 8, **_OPTIONS,
    )
    return (total.reshape(x.shape) if added else None), out.reshape(x.shape)
