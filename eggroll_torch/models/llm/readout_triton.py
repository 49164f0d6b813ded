"""What RWKV-7's time mixing does with the WKV readout before its output projection, in one Triton launch.

After the recurrence, every layer and token of :class:`eggroll_torch.models.llm.rwkv7.TimeMixing`
normalises the readout per head (GroupNorm ``ln_x``), scales and shifts it, adds the bonus term
(each head's value weighted by ``sum(r * k * r_k)`` over the head) and multiplies by the gate
``g``: as torch ops the standardisation, then about ten launches more. Here one program takes one
token row, all heads, with the ops' roundings:

- ``normed``: the readout standardised per head (:mod:`eggroll_torch.models.standardize_triton`'s
  roundings, ``eps`` rounded to the dtype);
- ``y = weight * normed + bias``, the product and the sum each rounded to the dtype;
- ``bonus = sum((r * k) * r_k)`` over the head, both products rounded, the sum in float32 and
  rounded;
- ``(y + bonus * v) * g``, each operation rounded.

Only the order of the three float32 sums differs from torch's, so the results agree with the
plain ops within the ``reduction`` tolerance (bfloat16: in practice bit for bit). The kernel is
compiled without fused multiply-adds. bfloat16 travels as 16-bit patterns (Triton's CPU
interpreter runs it too).

Importing this module needs ``triton``; callers check :func:`supports` after
:func:`eggroll_torch.random.triton_support.triton_usable`.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ...numerics import _reciprocal
from ..standardize_triton import (_OPTIONS, _as_bits, _head_block, _load_float32, _round, _rounded, _standardized,
                                  _store)

__all__ = ["supports", "gated_readout"]

_DTYPES = (torch.float32, torch.bfloat16)
# Largest head and row one program holds (RWKV-7 heads are 64 wide; 7B rows are 4096).
_MAX_HEAD = 256
_MAX_CHANNELS = 8192


@triton.jit
def _gated_readout_kernel(readout_ptr, weight_ptr, bias_ptr, r_ptr, k_ptr, v_ptr, r_k_ptr, g_ptr, out_ptr,
                          T, H, weight_stride_l, bias_stride_l, r_k_stride_l, reciprocal, eps,
                          S: tl.constexpr, BLOCK_H: tl.constexpr, IS_BF16: tl.constexpr):
    lead, channels, mask, at = _head_block(T, H, S, BLOCK_H)
    normed = _standardized(_load_float32(readout_ptr, at, mask, IS_BF16), mask, reciprocal, eps, IS_BF16)
    weight = _load_float32(weight_ptr, lead * weight_stride_l + channels, mask, IS_BF16)
    bias = _load_float32(bias_ptr, lead * bias_stride_l + channels, mask, IS_BF16)
    y = _round(_round(weight * normed, IS_BF16) + bias, IS_BF16)
    r = _load_float32(r_ptr, at, mask, IS_BF16)
    k = _load_float32(k_ptr, at, mask, IS_BF16)
    r_k = _load_float32(r_k_ptr, lead * r_k_stride_l + channels, mask, IS_BF16)
    bonus = _round(tl.sum(_round(_round(r * k, IS_BF16) * r_k, IS_BF16), axis=1), IS_BF16)
    v = _load_float32(v_ptr, at, mask, IS_BF16)
    y = _round(y + _round(bonus[:, None] * v, IS_BF16), IS_BF16)
    g = _load_float32(g_ptr, at, mask, IS_BF16)
    _store(out_ptr, at, _round(y * g, IS_BF16), mask, IS_BF16)


def _lead_stride(param: torch.Tensor, lead: tuple, channels: int) -> int | None:
    """0 for a shared contiguous parameter of ``channels`` elements (``(C,)`` or ``(H, S)``),
    ``channels`` for a contiguous per-member one (``lead`` first, then ones, then the channels),
    else None."""
    if not param.is_contiguous():
        return None
    if param.numel() == channels and param.ndim <= 2:
        return 0
    if tuple(param.shape[:len(lead)]) == lead and param.numel() == math.prod(lead) * channels:
        return channels
    return None


def supports(readout, weight, bias, r, k, v, r_k, g) -> bool:
    """Whether :func:`gated_readout` takes these inputs: ``readout, g (*lead, T, C)`` and ``r, k, v
    (*lead, T, H, S)`` contiguous, float32 or bfloat16, one dtype and device, with ``S`` a power
    of two up to 256 and ``C = H * S`` up to 8192; ``weight, bias`` (``(C,)``) and ``r_k``
    (``(H, S)``) contiguous, shared or per member (``lead`` first); no autograd history wanted."""
    tensors = (readout, weight, bias, r, k, v, r_k, g)
    if r.ndim < 3 or readout.dtype not in _DTYPES:
        return False
    if any(t.dtype != readout.dtype or t.device != readout.device for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    heads, size = r.shape[-2:]
    lead, channels = tuple(r.shape[:-3]), heads * size
    if size > _MAX_HEAD or size & (size - 1) or channels > _MAX_CHANNELS or readout.numel() == 0:
        return False
    rows = (*r.shape[:-2], channels)
    if readout.shape != rows or g.shape != rows or k.shape != r.shape or v.shape != r.shape:
        return False
    if not all(t.is_contiguous() for t in (readout, r, k, v, g)):
        return False
    return all(_lead_stride(p, lead, channels) is not None for p in (weight, bias, r_k))


def gated_readout(readout, weight, bias, r, k, v, r_k, g, eps: float) -> torch.Tensor:
    """``(group_norm(readout) + bonus * v) * g`` for RWKV-7's time mixing (see the module
    docstring): GroupNorm with one group per head (``eps``, then ``weight``/``bias``), ``bonus =
    sum(r * k * r_k)`` over each head. Returns a new tensor shaped and typed like ``readout``. The
    inputs must satisfy :func:`supports`."""
    if not supports(readout, weight, bias, r, k, v, r_k, g):
        raise ValueError("gated_readout takes contiguous float32 or bfloat16 readout, g (*lead, T, H * S) and "
                         "r, k, v (*lead, T, H, S) of one dtype and device with S a power of two <= 256, and "
                         "weight, bias, r_k shared or per member; use rwkv7's plain ops for other inputs")
    heads, size = r.shape[-2:]
    lead, tokens, channels = tuple(r.shape[:-3]), r.shape[-3], heads * size
    out = torch.empty_like(readout)
    bf16 = readout.dtype == torch.bfloat16
    strides = [_lead_stride(p, lead, channels) for p in (weight, bias, r_k)]
    block_h = triton.next_power_of_2(heads)
    _gated_readout_kernel[(math.prod(lead) * tokens,)](
        *(_as_bits(t) for t in (readout, weight, bias, r, k, v, r_k, g, out)), tokens, heads, *strides,
        _reciprocal(size, torch.float32), _rounded(eps, readout.dtype), S=size, BLOCK_H=block_h, IS_BF16=bf16,
        num_warps=4 if block_h * size <= 2048 else 8, **_OPTIONS,
    )
    return out
