"""What RWKV-7's WKV recurrence reads besides the receptance, formed in one Triton launch.

Every layer and token of :class:`eggroll_torch.models.llm.rwkv7.TimeMixing` forms, from the key
``k``, the low-rank parts ``a_low``, ``w_low`` (and past layer 0 ``v_low``) of the learning rate,
the decay (and the value gate), the vectors ``a0``, ``w0``, ``v0``, ``k_k``, ``k_a``, the values
``v`` and layer 0's values ``v_first``:

- ``a = sigmoid(a0 + a_low)`` and the gate ``sigmoid(v0 + v_low)``: the sum rounded to the dtype,
  then ``1 / (1 + exp(-x))`` in float32 rounded once, as torch's CUDA ``sigmoid`` computes it;
- the log-log decay ``-softplus(-(w0 + w_low)) - 0.5`` (``0.5`` in the dtype): the sum rounded,
  softplus as torch's CUDA ``logaddexp(x, 0)``, ``max(x, 0) + log1p(exp(-|x|))`` in float32
  rounded once, then the difference rounded;
- ``kk = k * k_k``, then each head's ``kk`` divided by its L2 norm (floored at ``1e-12``): the
  product rounded to the dtype, the sum of squares in float32, its root rounded to the dtype,
  the float32 reciprocal of the floored norm times ``kk``, rounded (``numerics.divide_by_broadcast``);
- ``-kk`` and ``kk * a`` (the recurrence's ``a`` and ``b``);
- ``k * (1 + (a - 1) * k_a)``, each operation rounded to the dtype;
- the mixed values ``v + (v_first - v) * gate``, each operation rounded,

as torch ops about thirty launches. Here one program takes one token row, all heads, with those
roundings; ``exp`` and ``log1p`` are libdevice's ``expf`` and ``log1pf`` (what torch's CUDA
kernels call), linked without flushing subnormals as torch's build does not, and the division
is IEEE's. Only the order of the float32 sum of squares differs, so the results agree with the
plain ops within the ``reduction`` tolerance (bfloat16: in practice bit for bit). Compiled
without fused multiply-adds outside libdevice's functions; bfloat16 travels as 16-bit patterns.
Triton's CPU interpreter runs it where libdevice's functions are given to it (the tests map them
to numpy's).

Importing this module needs ``triton``; callers check :func:`supports` after
:func:`eggroll_torch.random.triton_support.triton_usable`.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

from ..standardize_triton import (_LIBDEVICE_OPTIONS, _OPTIONS, _as_bits, _head_block, _load_float32, _round,
                                  _rounded, _store)
from .readout_triton import _MAX_CHANNELS, _MAX_HEAD, _lead_stride

__all__ = ["supports", "wkv_inputs"]

_DTYPES = (torch.float32, torch.bfloat16)
_KERNEL_OPTIONS = {**_OPTIONS, **_LIBDEVICE_OPTIONS}


@triton.jit
def _sigmoid(x):
    """torch's CUDA ``sigmoid`` of float32 ``x``: ``1 / (1 + expf(-x))``, IEEE division."""
    return tl.div_rn(1.0, 1.0 + libdevice.exp(-x))


@triton.jit
def _softplus(x):
    """torch's CUDA ``logaddexp(x, 0)`` of float32 ``x``: ``max(x, 0) + log1pf(expf(-|x|))``."""
    return tl.maximum(x, 0.0) + libdevice.log1p(libdevice.exp(-tl.abs(x)))


@triton.jit
def _biased(low_ptr, bias_ptr, at, lead, bias_stride_l, channels, mask, IS_BF16: tl.constexpr):
    """``bias + low`` rounded to the dtype, the bias shared or per member."""
    low = _load_float32(low_ptr, at, mask, IS_BF16)
    return _round(_load_float32(bias_ptr, lead * bias_stride_l + channels, mask, IS_BF16) + low, IS_BF16)


@triton.jit
def _wkv_inputs_kernel(k_ptr, a_low_ptr, a0_ptr, k_k_ptr, k_a_ptr, w_low_ptr, w0_ptr, v_ptr, v_first_ptr, v_low_ptr,
                       v0_ptr, out_ptr, T, H, a0_stride_l, k_k_stride_l, k_a_stride_l, w0_stride_l, v0_stride_l,
                       out_stride, floor, S: tl.constexpr, BLOCK_H: tl.constexpr, IS_BF16: tl.constexpr,
                       MIX_V: tl.constexpr):
    lead, channels, mask, at = _head_block(T, H, S, BLOCK_H)
    k = _load_float32(k_ptr, at, mask, IS_BF16)
    a = _round(_sigmoid(_biased(a_low_ptr, a0_ptr, at, lead, a0_stride_l, channels, mask, IS_BF16)), IS_BF16)
    kk = _round(k * _load_float32(k_k_ptr, lead * k_k_stride_l + channels, mask, IS_BF16), IS_BF16)
    norm = _round(tl.sqrt_rn(tl.sum(kk * kk, axis=1)), IS_BF16)
    floored = tl.maximum(norm, floor, propagate_nan=tl.PropagateNan.ALL)
    kk = _round(kk * tl.div_rn(1.0, floored)[:, None], IS_BF16)
    _store(out_ptr, at, -kk, mask, IS_BF16)
    _store(out_ptr, out_stride + at, _round(kk * a, IS_BF16), mask, IS_BF16)
    k_a = _load_float32(k_a_ptr, lead * k_a_stride_l + channels, mask, IS_BF16)
    scale = _round(1.0 + _round(_round(a - 1.0, IS_BF16) * k_a, IS_BF16), IS_BF16)
    _store(out_ptr, 2 * out_stride + at, _round(k * scale, IS_BF16), mask, IS_BF16)
    softplus = _round(_softplus(-_biased(w_low_ptr, w0_ptr, at, lead, w0_stride_l, channels, mask, IS_BF16)), IS_BF16)
    _store(out_ptr, 3 * out_stride + at, _round(-softplus - 0.5, IS_BF16), mask, IS_BF16)
    if MIX_V:
        gate = _round(_sigmoid(_biased(v_low_ptr, v0_ptr, at, lead, v0_stride_l, channels, mask, IS_BF16)), IS_BF16)
        v = _load_float32(v_ptr, at, mask, IS_BF16)
        towards = _round(_load_float32(v_first_ptr, at, mask, IS_BF16) - v, IS_BF16)
        mixed = _round(v + _round(towards * gate, IS_BF16), IS_BF16)
        _store(out_ptr, 4 * out_stride + at, mixed, mask, IS_BF16)


def supports(k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0, heads: int) -> bool:
    """Whether :func:`wkv_inputs` takes these inputs: ``k, a_low, w_low, v`` (and ``v_first,
    v_low`` unless all of ``v_first, v_low, v0`` are None) ``(*lead, T, C)`` contiguous, float32
    or bfloat16, ``C = heads * S`` with ``S`` a power of two up to 256 and ``C`` up to 8192;
    ``a0, k_k, k_a, w0`` (and ``v0``) (``C`` elements) contiguous, shared or per member (``lead``
    first); one dtype and device; no autograd history wanted."""
    mixes = [t is None for t in (v_first, v_low, v0)]
    if any(mixes) and not all(mixes):
        return False
    rows = [t for t in (k, a_low, w_low, v, v_first, v_low) if t is not None]
    vectors = [t for t in (a0, k_k, k_a, w0, v0) if t is not None]
    tensors = (*rows, *vectors)
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
    return all(_lead_stride(p, lead, channels) is not None for p in vectors)


def wkv_inputs(k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0, heads: int,
               floor: float) -> tuple[torch.Tensor, ...]:
    """``(-kk, kk * a, k * (1 + (a - 1) * k_a), w, v + (v_first - v) * gate)`` with
    ``a = sigmoid(a0 + a_low)``, ``w = -softplus(-(w0 + w_low)) - 0.5``,
    ``gate = sigmoid(v0 + v_low)`` and ``kk`` = ``k * k_k`` divided by its L2 norm per head, the
    norm floored at ``floor`` rounded to the dtype (see the module docstring); ``v`` itself last
    when ``v_first``, ``v_low`` and ``v0`` are None (layer 0). Each is shaped
    ``(*lead, T, heads, S)``, ``k`` split into heads, of its dtype (views of one new tensor, or
    ``v``'s). The inputs must satisfy :func:`supports`."""
    if not supports(k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0, heads):
        raise ValueError("wkv_inputs takes contiguous float32 or bfloat16 k, a_low, w_low, v, v_first, v_low "
                         "(*lead, T, heads * S) of one dtype and device with S a power of two <= 256 (v_first, "
                         "v_low and v0 all or none), and a0, k_k, k_a, w0, v0 shared or per member; use rwkv7's "
                         "plain ops for other inputs")
    lead, tokens, channels = tuple(k.shape[:-2]), k.shape[-2], k.shape[-1]
    size = channels // heads
    rows = math.prod(lead) * tokens
    mix = v_low is not None
    out = torch.empty((5 if mix else 4, rows, channels), dtype=k.dtype, device=k.device)
    bf16 = k.dtype == torch.bfloat16
    block_h = triton.next_power_of_2(heads)
    if not mix:
        v_first, v_low, v0 = v, v, a0
    _wkv_inputs_kernel[(rows,)](
        *(_as_bits(t) for t in (k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0, out)),
        tokens, heads, *(_lead_stride(t, lead, channels) for t in (a0, k_k, k_a, w0, v0)), out.stride(0),
        _rounded(floor, k.dtype), S=size, BLOCK_H=block_h, IS_BF16=bf16, MIX_V=mix,
        num_warps=4 if block_h * size <= 2048 else 8, **_KERNEL_OPTIONS,
    )
    results = list(out.view(out.shape[0], *lead, tokens, heads, size).unbind(0))
    if not mix:
        results.append(v.view(*lead, tokens, heads, size))
    return tuple(results)
