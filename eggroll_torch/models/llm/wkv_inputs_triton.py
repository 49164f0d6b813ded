"""What RWKV-7's WKV recurrence reads besides the receptance, formed in one Triton launch.

Every layer and token of :class:`eggroll_torch.models.llm.rwkv7.TimeMixing` forms, from the key
``k``, the in-context learning rate ``a``, the vectors ``k_k``, ``k_a``, the decay's softplus
``sp`` and (past layer 0) the values ``v``, layer 0's values ``v_first`` and the value gate:

- ``kk = k * k_k``, then each head's ``kk`` divided by its L2 norm (floored at ``1e-12``): the
  product rounded to the dtype, the sum of squares in float32, its root rounded to the dtype,
  the float32 reciprocal of the floored norm times ``kk``, rounded (``numerics.divide_by_broadcast``);
- ``-kk`` and ``kk * a`` (the recurrence's ``a`` and ``b``);
- ``k * (1 + (a - 1) * k_a)``, each operation rounded to the dtype;
- the log-log decay ``w = -sp - 0.5`` (``0.5`` in the dtype), rounded;
- the mixed values ``v + (v_first - v) * gate``, each operation rounded,

as torch ops about twenty launches. Here one program takes one token row, all heads, with those
roundings; only the order of the float32 sum of squares differs, so the results agree with the
plain ops within the ``reduction`` tolerance (bfloat16: in practice bit for bit). Compiled
without fused multiply-adds; bfloat16 travels as 16-bit patterns (Triton's CPU interpreter runs
it too).

Importing this module needs ``triton``; callers check :func:`supports` after
:func:`eggroll_torch.random.triton_support.triton_usable`.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..standardize_triton import _OPTIONS, _as_bits, _head_block, _load_float32, _round, _rounded, _store
from .readout_triton import _MAX_CHANNELS, _MAX_HEAD, _lead_stride

__all__ = ["supports", "wkv_inputs"]

_DTYPES = (torch.float32, torch.bfloat16)


@triton.jit
def _wkv_inputs_kernel(k_ptr, a_ptr, k_k_ptr, k_a_ptr, softplus_ptr, v_ptr, v_first_ptr, gate_ptr, out_ptr, T, H,
                       k_k_stride_l, k_a_stride_l, out_stride, floor, S: tl.constexpr, BLOCK_H: tl.constexpr,
                       IS_BF16: tl.constexpr, MIX_V: tl.constexpr):
    lead, channels, mask, at = _head_block(T, H, S, BLOCK_H)
    k = _load_float32(k_ptr, at, mask, IS_BF16)
    a = _load_float32(a_ptr, at, mask, IS_BF16)
    kk = _round(k * _load_float32(k_k_ptr, lead * k_k_stride_l + channels, mask, IS_BF16), IS_BF16)
    norm = _round(tl.sqrt_rn(tl.sum(kk * kk, axis=1)), IS_BF16)
    floored = tl.maximum(norm, floor, propagate_nan=tl.PropagateNan.ALL)
    kk = _round(kk * tl.div_rn(1.0, floored)[:, None], IS_BF16)
    _store(out_ptr, at, -kk, mask, IS_BF16)
    _store(out_ptr, out_stride + at, _round(kk * a, IS_BF16), mask, IS_BF16)
    k_a = _load_float32(k_a_ptr, lead * k_a_stride_l + channels, mask, IS_BF16)
    scale = _round(1.0 + _round(_round(a - 1.0, IS_BF16) * k_a, IS_BF16), IS_BF16)
    _store(out_ptr, 2 * out_stride + at, _round(k * scale, IS_BF16), mask, IS_BF16)
    decay = _round(-_load_float32(softplus_ptr, at, mask, IS_BF16) - 0.5, IS_BF16)
    _store(out_ptr, 3 * out_stride + at, decay, mask, IS_BF16)
    if MIX_V:
        v = _load_float32(v_ptr, at, mask, IS_BF16)
        towards = _round(_load_float32(v_first_ptr, at, mask, IS_BF16) - v, IS_BF16)
        mixed = _round(v + _round(towards * _load_float32(gate_ptr, at, mask, IS_BF16), IS_BF16), IS_BF16)
        _store(out_ptr, 4 * out_stride + at, mixed, mask, IS_BF16)


def supports(k, a, k_k, k_a, softplus, v, v_first, gate, heads: int) -> bool:
    """Whether :func:`wkv_inputs` takes these inputs: ``k, a, softplus, v`` (and ``v_first, gate``
    unless both are None) ``(*lead, T, C)`` contiguous, float32 or bfloat16, ``C = heads * S``
    with ``S`` a power of two up to 256 and ``C`` up to 8192; ``k_k, k_a`` (``C`` elements)
    contiguous, shared or per member (``lead`` first); one dtype and device; no autograd history
    wanted."""
    if (v_first is None) != (gate is None):
        return False
    rows = [t for t in (k, a, softplus, v, v_first, gate) if t is not None]
    tensors = (*rows, k_k, k_a)
    if k.ndim < 2 or k.dtype not in _DTYPES or not isinstance(heads, int) or heads < 1:
        return False
    if any(t.dtype != k.dtype or t.device != k.device for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    channels = k.shape[-1]
    size = channels // heads
    if channels % heads or size > _MAX_HEAD or size & (size - 1) or channels > _MAX_CHANNELS or k.numel() == 0:
        return False
    if any(t.shape != k.shape or not t.is_contiguous() for t in rows):
        return False
    lead = tuple(k.shape[:-2])
    return all(_lead_stride(p, lead, channels) is not None for p in (k_k, k_a))


def wkv_inputs(k, a, k_k, k_a, softplus, v, v_first, gate, heads: int, floor: float) -> tuple[torch.Tensor, ...]:
    """``(-kk, kk * a, k * (1 + (a - 1) * k_a), -softplus - 0.5, v + (v_first - v) * gate)``, with
    ``kk`` = ``k * k_k`` divided by its L2 norm per head, the norm floored at ``floor`` rounded to
    the dtype (see the module docstring); ``v`` itself last when ``v_first`` and ``gate`` are
    None (layer 0). Each is shaped ``(*lead, T, heads, S)``, ``k`` split into heads, of its
    dtype (views of one new tensor, or ``v``'s). The inputs must satisfy :func:`supports`."""
    if not supports(k, a, k_k, k_a, softplus, v, v_first, gate, heads):
        raise ValueError("wkv_inputs takes contiguous float32 or bfloat16 k, a, softplus, v, v_first, gate "
                         "(*lead, T, heads * S) of one dtype and device with S a power of two <= 256 (v_first and "
                         "gate both or neither), and k_k, k_a shared or per member; use rwkv7's plain ops for "
                         "other inputs")
    lead, tokens, channels = tuple(k.shape[:-2]), k.shape[-2], k.shape[-1]
    size = channels // heads
    rows = math.prod(lead) * tokens
    mix = gate is not None
    out = torch.empty((5 if mix else 4, rows, channels), dtype=k.dtype, device=k.device)
    bf16 = k.dtype == torch.bfloat16
    block_h = triton.next_power_of_2(heads)
    _wkv_inputs_kernel[(rows,)](
        *(_as_bits(t) for t in (k, a, k_k, k_a, softplus, v, v_first if mix else v, gate if mix else v, out)),
        tokens, heads, _lead_stride(k_k, lead, channels), _lead_stride(k_a, lead, channels), out.stride(0),
        _rounded(floor, k.dtype), S=size, BLOCK_H=block_h, IS_BF16=bf16, MIX_V=mix,
        num_warps=4 if block_h * size <= 2048 else 8, **_OPTIONS,
    )
    results = list(out.view(out.shape[0], *lead, tokens, heads, size).unbind(0))
    if not mix:
        results.append(v.view(*lead, tokens, heads, size))
    return tuple(results)
