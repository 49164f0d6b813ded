"""Triton kernel: the per-member low-rank correction of a layer, its activation, and the next
layer's rank projection, in one pass over the shared matmul's output.

A perturbed layer is ``y = act(x @ W.T + c_n * (x @ B_p) @ A_p.T)`` for member ``n`` of pair
``p``. The shared ``h = x @ W.T`` is one large matmul (cuBLAS). This kernel then reads ``h`` once
and, per block of rows of one pair:

* adds ``(s_n * xb) @ (c * A_p).T`` where ``xb = x @ B_p`` (``(rows, r)``, float32, rounded to the
  factors' dtype like upstream's bfloat16 matmul output) and ``c * A_p`` is rounded as upstream
  rounds it;
* applies the activation and writes ``y`` (in place over ``h`` is allowed);
* accumulates ``y @ B'_p`` for the next layer's factor ``B'`` (so the next layer needs no
  extra pass over ``y``), and/or the row sums of ``y`` (for a mean-of-outputs fitness).

The same kernel with the correction switched off projects the network input, ``x @ B_p``.
Factors are read in the ``(P, r, features)`` layout of :mod:`.lowrank`. Importing this module
needs ``triton``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton import interpreting

ACTIVATIONS = {"identity": 0, "tanh": 1, "relu": 2}
_BLOCK_N = 128


@triton.jit
def _tanh(v):
    # exp-based for |v| >= 1/4, odd Taylor series below, where 1 - exp(-2|v|) would cancel.
    a = tl.abs(v)
    t = tl.exp(-2.0 * a)
    large = (1.0 - t) / (1.0 + t)
    s = a * a
    small = a * (1.0 + s * (-0.333333333333 + s * (0.133333333333 + s * (-0.0539682539683 + s * 0.0218694885362))))
    r = tl.where(a < 0.25, small, large)
    return tl.where(v < 0, -r, r)


@triton.jit
def _activate(v, ACT: tl.constexpr):
    if ACT == 1:
        v = _tanh(v)
    if ACT == 2:
        v = tl.maximum(v, 0.0)
    return v


@triton.jit
def _dot(a, b, F32_DOT: tl.constexpr):
    # Operands hold values of the factors' dtype either way; F32_DOT multiplies them as exact
    # float32 with float32 accumulation instead of on half-precision tensor cores.
    if F32_DOT:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def _epilogue_kernel(
    h_ptr, y_ptr, xb_ptr, sign_ptr, a_ptr, bn_ptr, xbn_ptr, rowsum_ptr,
    a_scale, rows_per_member, rank, rank_next,
    a_stride_p, a_stride_k, bn_stride_p, bn_stride_k,
    ACT: tl.constexpr, HAS_CORR: tl.constexpr, WRITE_Y: tl.constexpr, HAS_NEXT: tl.constexpr,
    ROWSUM: tl.constexpr, F32_DOT: tl.constexpr, COLS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, RP: tl.constexpr, RNP: tl.constexpr,
):
    row0 = tl.program_id(0) * BLOCK_M
    rows = row0 + tl.arange(0, BLOCK_M)
    pair = (row0 // (2 * rows_per_member)).to(tl.int64)
    ks = tl.arange(0, RP)
    kn = tl.arange(0, RNP)
    row_base = rows.to(tl.int64)[:, None] * COLS
    if HAS_CORR:
        xb = tl.load(xb_ptr + rows[:, None] * rank + ks[None, :], mask=ks[None, :] < rank, other=0.0)
        xb = (xb.to(a_ptr.dtype.element_ty).to(tl.float32) * tl.load(sign_ptr + rows // rows_per_member)[:, None])
        xb = xb.to(a_ptr.dtype.element_ty)
    acc = tl.zeros((BLOCK_M, RNP), dtype=tl.float32)
    total = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for c0 in range(0, COLS, BLOCK_N):
        col = c0 + tl.arange(0, BLOCK_N)
        inside = col < COLS
        v = tl.load(h_ptr + row_base + col[None, :], mask=inside[None, :], other=0.0).to(tl.float32)
        if HAS_CORR:
            a = tl.load(a_ptr + pair * a_stride_p + ks[:, None] * a_stride_k + col[None, :],
                        mask=(ks[:, None] < rank) & inside[None, :], other=0.0)
            a = (a.to(tl.float32) * a_scale).to(a.dtype)
            v += _dot(xb, a, F32_DOT)
        y = _activate(v, ACT).to(y_ptr.dtype.element_ty)
        if WRITE_Y:
            tl.store(y_ptr + row_base + col[None, :], y, mask=inside[None, :])
        if HAS_NEXT:
            b = tl.load(bn_ptr + pair * bn_stride_p + kn[None, :] * bn_stride_k + col[:, None],
                        mask=(kn[None, :] < rank_next) & inside[:, None], other=0.0)
            acc += _dot(y.to(b.dtype), b, F32_DOT)
        if ROWSUM:
            total += tl.sum(tl.where(inside[None, :], y.to(tl.float32), 0.0), axis=1)
    if HAS_NEXT:
        tl.store(xbn_ptr + rows[:, None] * rank_next + kn[None, :], acc, mask=kn[None, :] < rank_next)
    if ROWSUM:
        tl.store(rowsum_ptr + rows, total)


def _padded(rank: int) -> int:
    return max(16, triton.next_power_of_2(rank))


def block_rows(rows_per_member: int) -> int | None:
    """Rows per program: the largest of 64, 32, 16 dividing a pair's ``2 * rows_per_member``
    rows (so a program never mixes pairs), or None when none does."""
    for block in (64, 32, 16):
        if (2 * rows_per_member) % block == 0:
            return block
    return None


def launch_epilogue(h, y, *, rows_per_member: int, activation: str, xb=None, signs=None, a_scale=1.0,
                    a_t=None, b_next_t=None, xb_next=None, rowsum=None) -> None:
    """Run the kernel over ``h`` ``(M, cols)`` with ``M = N * rows_per_member`` rows.

    ``y``: output like ``h`` (may be ``h``), or None to skip writing it. Correction (all or
    none): ``xb`` ``(M, r)`` float32, ``signs`` ``(N,)`` float32 (+-1), ``a_scale`` (a float
    exactly representable in the factors' dtype), ``a_t`` ``(P, r, cols)`` unit normals with a
    unit last stride. Next projection: ``b_next_t`` ``(P, r', cols)`` with a unit last stride and
    ``xb_next`` ``(M, r')`` float32 output. ``rowsum``: ``(M,)`` float32 output or None.
    The caller checks shapes (:mod:`.lowrank`) and that :func:`block_rows` is not None.
    """
    m, cols = h.shape
    block_m = block_rows(rows_per_member)
    has_corr = a_t is not None
    has_next = b_next_t is not None
    rank = a_t.shape[1] if has_corr else 1
    rank_next = b_next_t.shape[1] if has_next else 1
    factor_dtype = a_t.dtype if has_corr else (b_next_t.dtype if has_next else h.dtype)
    dummy = h
    _epilogue_kernel[(m // block_m,)](
        h, y if y is not None else dummy, xb if has_corr else dummy, signs if has_corr else dummy,
        a_t if has_corr else dummy, b_next_t if has_next else dummy, xb_next if has_next else dummy,
        rowsum if rowsum is not None else dummy,
        float(a_scale), rows_per_member, rank, rank_next,
        a_t.stride(0) if has_corr else 0, a_t.stride(1) if has_corr else 0,
        b_next_t.stride(0) if has_next else 0, b_next_t.stride(1) if has_next else 0,
        ACT=ACTIVATIONS[activation], HAS_CORR=has_corr, WRITE_Y=y is not None, HAS_NEXT=has_next,
        ROWSUM=rowsum is not None, F32_DOT=factor_dtype == torch.float32 or interpreting(), COLS=cols,
        BLOCK_M=block_m, BLOCK_N=_BLOCK_N, RP=_padded(rank), RNP=_padded(rank_next),
        num_warps=8 if block_m == 64 else 4,
    )
