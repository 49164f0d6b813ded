"""RWKV-7's WKV recurrence over a whole sequence in one Triton launch.

The Python loop of :meth:`eggroll_torch.models.llm.rwkv7.BaseRWKV.inner_loop` launches a few
kernels per token and layer: for a population of 256 members, 256 tokens and 12 layers, tens of
thousands of tiny launches. Here one program owns ``ROWS`` rows of one ``(member, head)`` state
``S x S``, keeps them in registers and walks the ``T`` tokens; rows are independent (row ``i``
reads only row ``i`` and the token's vectors), so a head splits over several programs.

Each token repeats the loop's arithmetic in the loop's order and dtype:
``removed = s a`` (float32 sum, rounded to the dtype), ``s = ((s * w + v k^T) + removed b^T)``
with every product and sum rounded to the dtype, as torch rounds each op of ``_wkv_step``
(bfloat16 and float16 products and sums are single native operations, which round as torch's
float32-computed, dtype-rounded ops do), then the readout ``s r`` summed in float32 and rounded.
Only the two sums' order differs from torch's matmuls. With ``log_decay`` the kernel reads the
log-log decay and forms the decay ``exp(-exp(w))`` itself, as torch's two ``exp`` kernels do
(libdevice's ``expf`` in float32, each result rounded to the dtype, subnormals kept), instead of
three launches over every token before it.

Importing this module needs ``triton``; callers check
:func:`eggroll_torch.random.triton_support.triton_usable` first.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

from ..standardize_triton import _LIBDEVICE_OPTIONS

__all__ = ["supports", "wkv7"]

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Rows of a head's state per program: 16 gives 4 programs a head at S = 64, enough programs to
# fill an H100 for a population (N * H * 4) while each still loads whole key vectors.
_ROWS = 16


@triton.jit
def _token_inputs(w_ptr, k_ptr, a_ptr, b_ptr, r_ptr, v_ptr, at, cols, rows):
    """One token's decay, key, removal and replacement vectors and receptance at this program's
    key channels ``cols``, and its values at the program's value rows ``rows``."""
    return (tl.load(w_ptr + at + cols), tl.load(k_ptr + at + cols), tl.load(a_ptr + at + cols),
            tl.load(b_ptr + at + cols), tl.load(r_ptr + at + cols), tl.load(v_ptr + at + rows))


@triton.jit
def _decay(w, LOG_DECAY: tl.constexpr):
    """``w`` itself, or with ``LOG_DECAY`` the decay ``exp(-exp(w))`` of the log-log decay ``w``:
    each ``exp`` libdevice's ``expf`` in float32, rounded to ``w``'s dtype."""
    if LOG_DECAY:
        inner = libdevice.exp(w.to(tl.float32)).to(w.dtype)
        w = libdevice.exp(-inner.to(tl.float32)).to(w.dtype)
    return w


@triton.jit
def _wkv7_kernel(r_ptr, w_ptr, k_ptr, v_ptr, a_ptr, b_ptr, s_ptr, reset_ptr, length_ptr, out_ptr, kept_ptr,
                 T, H, s_stride_b, kept_stride_b, reset_stride_b, reset_stride_t, S: tl.constexpr,
                 ROWS: tl.constexpr, LOG_DECAY: tl.constexpr):
    bh = tl.program_id(0)
    batch = bh // H
    head = bh % H
    rows = tl.program_id(1) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, S)
    in_head = head * S * S + rows[:, None] * S + cols[None, :]
    kept_at = batch.to(tl.int64) * kept_stride_b + in_head
    state = tl.load(s_ptr + batch.to(tl.int64) * s_stride_b + in_head)
    last = tl.minimum(tl.load(length_ptr), T) - 1
    if last < 0:
        tl.store(kept_ptr + kept_at, state)
    step = H * S
    start = (batch.to(tl.int64) * T * H + head) * S
    resets = reset_ptr + batch.to(tl.int64) * reset_stride_b
    # The next token's inputs are loaded while this token computes: the state update is a chain
    # of dependent steps, and a load issued only when needed would stall it every token.
    w, k, a, b, r, v = _token_inputs(w_ptr, k_ptr, a_ptr, b_ptr, r_ptr, v_ptr, start, cols, rows)
    reset = tl.load(resets)
    for t in range(T):
        ahead = start + tl.minimum(t + 1, T - 1) * step
        w_next, k_next, a_next, b_next, r_next, v_next = _token_inputs(w_ptr, k_ptr, a_ptr, b_ptr, r_ptr, v_ptr,
                                                                       ahead, cols, rows)
        reset_next = tl.load(resets + tl.minimum(t + 1, T - 1) * reset_stride_t)

        state = tl.where(reset != 0, tl.zeros_like(state), state)
        removed = tl.sum(state.to(tl.float32) * a.to(tl.float32)[None, :], axis=1).to(state.dtype)
        state = state * _decay(w, LOG_DECAY)[None, :] + v[:, None] * k[None, :] + removed[:, None] * b[None, :]
        out = tl.sum(state.to(tl.float32) * r.to(tl.float32)[None, :], axis=1)
        tl.store(out_ptr + start + t * step + rows, out.to(out_ptr.dtype.element_ty))
        if t == last:
            tl.store(kept_ptr + kept_at, state)

        w, k, a, b, r, v, reset = w_next, k_next, a_next, b_next, r_next, v_next, reset_next


def supports(r, w, k, v, a, b, s, new_starts) -> bool:
    """Whether :func:`wkv7` takes these arguments: ``r, w, k, v, a, b`` of one shape ``(..., T, H,
    S)`` and ``s (..., H, S, S)`` with the same leading axes, all of one dtype (float32, bfloat16 or
    float16), ``S`` a power of two, ``new_starts`` a bool mask broadcastable to ``(..., T)``, all on
    one device, and no tensor requiring grad (the kernel has no backward)."""
    inputs = (r, w, k, v, a, b)
    if r.ndim < 3 or r.dtype not in _DTYPES or any(x.shape != r.shape or x.dtype != r.dtype for x in inputs):
        return False
    *lead, n_tokens, _, size = r.shape
    if size & (size - 1) or s.dtype != r.dtype or s.shape != (*lead, r.shape[-2], size, size):
        return False
    if new_starts.dtype != torch.bool or any(x.requires_grad for x in (*inputs, s)):
        return False
    if any(x.device != r.device for x in (*inputs, s, new_starts)):
        return False
    try:
        return torch.broadcast_shapes(new_starts.shape, (*lead, n_tokens)) == (*lead, n_tokens)
    except RuntimeError:
        return False


def _batched_heads(x, batch):
    """``x (..., H, S, S)`` as ``(batch, H, S, S)`` with each member's heads contiguous (any batch
    stride, 0 included): a view where one exists, else a contiguous copy."""
    flat = x.reshape(batch, *x.shape[-3:])
    size = x.shape[-1]
    if flat.stride()[1:] != (size * size, size, 1):
        flat = flat.contiguous()
    return flat


def _out_heads(out, s):
    """``out`` as ``(batch, H, S, S)``, a view it receives the state through: checked to have ``s``'s
    shape, dtype and device and each member's ``(H, S, S)`` block contiguous."""
    if out.shape != s.shape or out.dtype != s.dtype or out.device != s.device:
        raise ValueError(f"out must match s: shape {tuple(s.shape)}, {s.dtype} on {s.device}; got shape "
                         f"{tuple(out.shape)}, {out.dtype} on {out.device}")
    size = s.shape[-1]
    try:
        flat = out.view(math.prod(out.shape[:-3]), *out.shape[-3:])
    except RuntimeError:
        flat = None
    if flat is None or flat.stride()[1:] != (size * size, size, 1):
        raise ValueError(f"out must hold each member's (H, S, S) block contiguously, as one view over the "
                         f"leading axes; got strides {out.stride()}")
    return flat


def wkv7(r, w, k, v, a, b, s, length, new_starts, *, out=None, log_decay=False):
    """The WKV recurrence of :meth:`BaseRWKV.inner_loop` in one launch.

    ``r, w, k, v, a, b (..., T, H, S)`` with ``w`` the decay itself, or with ``log_decay`` the
    log-log decay, of which the kernel takes ``exp(-exp(w))`` as torch's ops round it (see the
    module docstring; a Triton kernel calling libdevice, so not under torch.compile's tracing),
    ``s (..., H, S, S)`` indexed ``[value channel, key channel]``, all one dtype
    (see :func:`supports`). ``length``: an int or a one-element integer tensor; ``new_starts``: a
    bool mask broadcastable to ``(..., T)``; before token ``t`` the state is zeroed where
    ``new_starts[..., t]``. Returns the state after token ``min(length, T) - 1`` (a copy of ``s``
    when ``length <= 0``), ``(..., H, S, S)``, and the readouts ``(..., T, H, S)``, both in the
    inputs' dtype.

    ``s`` is read in place when each member's ``(H, S, S)`` block is contiguous, whatever the
    stride between members (a slice of a larger state, or an expanded one). ``out``, shaped and
    typed like ``s`` with the same layout (each member's block contiguous, any stride between
    members), receives the returned state in place of a new tensor: a population's recurrent
    state is the largest thing a token step writes, and copying it into the caller's buffer
    afterwards would write it twice.
    """
    *lead, n_tokens, n_head, size = r.shape
    batch = math.prod(lead)
    flat = [x.reshape(batch, n_tokens, n_head, size).contiguous() for x in (r, w, k, v, a, b)]
    state = _batched_heads(s, batch)
    if out is None:
        kept = torch.empty((batch, n_head, size, size), dtype=s.dtype, device=s.device)
    else:
        kept = _out_heads(out, s)
    # A converting copy (batch x tokens bytes), not a dtype view: torch 2.11's inductor rejects
    # viewing a bool tensor as uint8.
    resets = new_starts.expand(*lead, n_tokens).reshape(batch, n_tokens).to(torch.uint8)
    if torch.is_tensor(length):
        # Clamped on the device: a host read of a device length would wait for the whole queue.
        limit = length.to(r.device).reshape(1).clamp(-1, n_tokens).to(torch.int32)
    else:
        limit = torch.full((1,), max(-1, min(int(length), n_tokens)), dtype=torch.int32, device=r.device)
    readout = torch.empty_like(flat[0])
    rows = min(_ROWS, size)
    _wkv7_kernel[(batch * n_head, size // rows)](
        *flat, state, resets, limit, readout, kept, n_tokens, n_head, state.stride(0), kept.stride(0),
        resets.stride(0), resets.stride(1), S=size, ROWS=rows, LOG_DECAY=log_decay,
        num_warps=2 if rows * size <= 1024 else 4, **(_LIBDEVICE_OPTIONS if log_decay else {}),
    )
    return (kept.reshape(s.shape) if out is None else out), readout.reshape(r.shape)
