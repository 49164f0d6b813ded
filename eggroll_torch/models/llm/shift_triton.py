"""RWKV-7's token shift and its interpolations ``x + (shift(x) - x) * mix`` in one Triton launch.

Every layer of RWKV-7 mixes each token with its predecessor six times in the time mixing
(``x_r, x_w, x_k, x_v, x_a, x_g``) and once in the channel mixing. As torch ops that is a
concatenation, a zero fill and a ``where`` for the sequence starts and a difference, then a product
and a sum per mixing vector: sixteen launches for the time mixing and six for the channel mixing, every layer
and every generated token. Here one program computes, for one token row and a block of channels,

- ``shifted``: the previous token's input (the carried-over ``previous`` row for the first
  token), zero where ``new_starts`` flags the token;
- ``delta = shifted - x``, rounded to the dtype;
- for each mixing vector ``m``: ``x + delta * m``, the product and the sum each rounded to the
  dtype,

the operations and roundings of :func:`eggroll_torch.models.llm.rwkv7._shift_delta` and the
interpolations of ``_shift_lerps``, so the results are the same bits (the kernel is compiled
without fused multiply-adds, which would skip the rounding of the product). bfloat16 travels as
16-bit patterns and is rounded on the float32 bits, as in
:mod:`eggroll_torch.models.standardize_triton`, so Triton's CPU interpreter runs the kernel too.

Importing this module needs ``triton``; callers check :func:`supports` after
:func:`eggroll_torch.random.triton_support.triton_usable`.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..standardize_triton import _OPTIONS, _as_bits, _load_float32, _round, _store

__all__ = ["supports", "shift_lerps"]

_DTYPES = (torch.float32, torch.bfloat16)
# The kernel takes up to this many mixing vectors (the time mixing's six).
_MAX_MIXES = 6
# Channels per program.
_BLOCK = 1024


@triton.jit
def _lerp_into(out_ptr, at, mask, mix_ptr, mix_at, x, delta, IS_BF16: tl.constexpr):
    mix = _load_float32(mix_ptr, mix_at, mask, IS_BF16)
    _store(out_ptr, at, _round(x + _round(delta * mix, IS_BF16), IS_BF16), mask, IS_BF16)


@triton.jit
def _shift_lerp_kernel(x_ptr, previous_ptr, starts_ptr, out_ptr, m0_ptr, m1_ptr, m2_ptr, m3_ptr, m4_ptr, m5_ptr,
                       T, C, x_stride_l, x_stride_t, previous_stride_l, starts_stride_l, starts_stride_t,
                       out_stride_mix, mix_stride_l, N_MIX: tl.constexpr, IS_BF16: tl.constexpr,
                       BLOCK: tl.constexpr):
    row = tl.program_id(0)
    lead = row // T
    t = row % T
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < C
    x_row = lead.to(tl.int64) * x_stride_l + t.to(tl.int64) * x_stride_t
    x = _load_float32(x_ptr, x_row + cols, mask, IS_BF16)
    if t > 0:
        shifted = _load_float32(x_ptr, x_row - x_stride_t + cols, mask, IS_BF16)
    else:
        shifted = _load_float32(previous_ptr, lead.to(tl.int64) * previous_stride_l + cols, mask, IS_BF16)
    reset = tl.load(starts_ptr + lead.to(tl.int64) * starts_stride_l + t.to(tl.int64) * starts_stride_t)
    shifted = tl.where(reset != 0, 0.0, shifted)
    delta = _round(shifted - x, IS_BF16)
    at = row.to(tl.int64) * C + cols
    mix_at = lead.to(tl.int64) * mix_stride_l + cols
    _lerp_into(out_ptr, at, mask, m0_ptr, mix_at, x, delta, IS_BF16)
    if N_MIX > 1:
        _lerp_into(out_ptr, out_stride_mix + at, mask, m1_ptr, mix_at, x, delta, IS_BF16)
    if N_MIX > 2:
        _lerp_into(out_ptr, 2 * out_stride_mix + at, mask, m2_ptr, mix_at, x, delta, IS_BF16)
    if N_MIX > 3:
        _lerp_into(out_ptr, 3 * out_stride_mix + at, mask, m3_ptr, mix_at, x, delta, IS_BF16)
    if N_MIX > 4:
        _lerp_into(out_ptr, 4 * out_stride_mix + at, mask, m4_ptr, mix_at, x, delta, IS_BF16)
    if N_MIX > 5:
        _lerp_into(out_ptr, 5 * out_stride_mix + at, mask, m5_ptr, mix_at, x, delta, IS_BF16)


def _mix_layout(mixes, lead: tuple, channels: int) -> int | None:
    """The stride between the lead rows of every mixing vector (0 when they are shared ``(C,)``
    vectors, ``C`` when each is a contiguous ``(*lead, 1, C)`` per-member one), or None when
    they are not all one of the two."""
    if all(m.shape == (channels,) and m.stride() == (1,) for m in mixes):
        return 0
    per_member = (*lead, 1, channels)
    if all(m.shape == per_member and m.is_contiguous() for m in mixes):
        return channels
    return None


def supports(x: torch.Tensor, previous: torch.Tensor, new_starts: torch.Tensor, mixes) -> bool:
    """Whether :func:`shift_lerps` takes these inputs: ``x (*lead, T, C)`` float32 or bfloat16
    with ``T, C >= 1``; ``previous (*lead, 1, C)`` and 1 to 6 mixing vectors, all of ``x``'s dtype
    and device, the mixes all ``(C,)`` or all contiguous ``(*lead, 1, C)``; ``new_starts`` a bool
    tensor ``(T,)`` or ``(*lead, T)`` on the same device; no autograd history wanted."""
    if not (x.dtype in _DTYPES and x.ndim >= 2 and x.numel() > 0 and 1 <= len(mixes) <= _MAX_MIXES):
        return False
    lead, (tokens, channels) = tuple(x.shape[:-2]), x.shape[-2:]
    tensors = (x, previous, *mixes)
    if any(t.dtype != x.dtype or t.device != x.device for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if previous.shape != (*lead, 1, channels) or _mix_layout(mixes, lead, channels) is None:
        return False
    return (new_starts.dtype == torch.bool and new_starts.device == x.device
            and new_starts.shape in ((tokens,), (*lead, tokens)))


def shift_lerps(x: torch.Tensor, previous: torch.Tensor, new_starts: torch.Tensor, mixes) -> list[torch.Tensor]:
    """``[x + delta * m for m in mixes]`` with ``delta = shifted - x``, where ``shifted`` is ``x``
    moved one token later along axis -2 with ``previous`` first, and zero at the tokens
    ``new_starts`` flags: RWKV-7's ``_shift_lerps`` for every mix at once, each result shaped
    and typed like ``x`` (views of one new tensor). The inputs must satisfy :func:`supports`."""
    if not supports(x, previous, new_starts, mixes):
        raise ValueError("shift_lerps takes float32 or bfloat16 x (*lead, T, C) with previous (*lead, 1, C) and 1 "
                         f"to {_MAX_MIXES} mixes of its dtype and device, all (C,) or all (*lead, 1, C), and bool "
                         "new_starts (T,) or (*lead, T); use rwkv7._shift_lerps for other inputs")
    lead, (tokens, channels) = tuple(x.shape[:-2]), x.shape[-2:]
    members = math.prod(lead)
    rows = x.reshape(members, tokens, channels)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    carried = previous.reshape(members, channels)
    if carried.stride(-1) != 1:
        carried = carried.contiguous()
    starts = new_starts.reshape(-1, tokens).view(torch.uint8)
    starts_stride_l = 0 if new_starts.ndim == 1 else starts.stride(0)
    mix_stride = _mix_layout(mixes, lead, channels)
    out = torch.empty((len(mixes), members * tokens, channels), dtype=x.dtype, device=x.device)
    bf16 = x.dtype == torch.bfloat16
    pointers = [_as_bits(m) for m in mixes] + [_as_bits(mixes[0])] * (_MAX_MIXES - len(mixes))
    block = min(_BLOCK, triton.next_power_of_2(channels))
    _shift_lerp_kernel[(members * tokens, triton.cdiv(channels, block))](
        _as_bits(rows), _as_bits(carried), starts, _as_bits(out), *pointers, tokens, channels, rows.stride(0),
        rows.stride(1), carried.stride(0), starts_stride_l, starts.stride(1), out.stride(0), mix_stride,
        N_MIX=len(mixes), IS_BF16=bf16, BLOCK=block, num_warps=4, **_OPTIONS,
    )
    return list(out.view(len(mixes), *x.shape).unbind(0))
