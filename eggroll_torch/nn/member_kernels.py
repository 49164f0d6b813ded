"""Triton kernel of :func:`.member_ops.member_layer_norm`'s population rule.

Every row of the population's activations is normalised and multiplied by its own member's
weight and bias in one pass, as the unperturbed LayerNorm does with its shared ones: the
member's parameters ``shared + s_m * noise[m // 2]`` are formed in the parameter's dtype (the
functional layer's rounding) and the row is computed in float32 in torch's order,
``(x - mean) * rstd * weight + bias``, then rounded once.

Importing this module needs ``triton``; callers check ``triton_support.triton_usable`` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggroll_torch.noiser.lowrank_triton import round_to as _round


@triton.jit
def _member_param(ptr, noise_ptr, pair, odd, cols, mask, D, NOISY: tl.constexpr):
    shared = tl.load(ptr + cols, mask=mask, other=0.0)
    if NOISY:
        noise = tl.load(noise_ptr + pair.to(tl.int64) * D + cols, mask=mask, other=0.0).to(tl.float32)
        signed = tl.where(odd, -noise, noise)
        return _round(shared.to(tl.float32) + signed, shared.dtype).to(tl.float32)
    return shared.to(tl.float32)


@triton.jit
def _layer_norm_kernel(x_ptr, y_ptr, w_ptr, wn_ptr, b_ptr, bn_ptr, rows_per_member, D, eps,
                       HAS_W: tl.constexpr, W_NOISY: tl.constexpr, HAS_B: tl.constexpr, B_NOISY: tl.constexpr,
                       BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    member = row // rows_per_member
    pair, odd = member // 2, (member % 2) == 1
    cols = tl.arange(0, BLOCK)
    mask = cols < D
    x = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0)
    wide = x.to(tl.float32)
    mean = tl.sum(wide, axis=0) / D
    centered = tl.where(mask, wide - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=0) / D + eps)
    y = centered * rstd
    if HAS_W:
        y = y * _member_param(w_ptr, wn_ptr, pair, odd, cols, mask, D, W_NOISY)
    if HAS_B:
        y = y + _member_param(b_ptr, bn_ptr, pair, odd, cols, mask, D, B_NOISY)
    tl.store(y_ptr + row * D + cols, _round(y, x.dtype), mask=mask)


def member_layer_norm_rows(x: torch.Tensor, rows_per_member: int, weight, weight_noise, bias, bias_noise,
                           eps: float) -> torch.Tensor:
    """``x`` ``(M, D)`` contiguous, member ``m`` owning rows ``m * rows_per_member ..``; weight,
    bias ``(D,)`` or None; their noises ``(P, D)`` or None. Returns a new ``(M, D)`` tensor."""
    rows, width = x.shape
    out = torch.empty_like(x)
    block = triton.next_power_of_2(width)
    dummy = x
    _layer_norm_kernel[(rows,)](
        x, out, dummy if weight is None else weight, dummy if weight_noise is None else weight_noise.contiguous(),
        dummy if bias is None else bias, dummy if bias_noise is None else bias_noise.contiguous(),
        rows_per_member, width, eps,
        HAS_W=weight is not None, W_NOISY=weight_noise is not None, HAS_B=bias is not None,
        B_NOISY=bias_noise is not None, BLOCK=block, num_warps=4 if block <= 2048 else 8,
    )
    return out
