"""Triton kernels for the memory-bound halves of a perturbed layer; cuBLAS does the matmul.

A perturbed layer is ``y = act(x @ W.T + (s_n * x @ B_p) @ (c * A_p).T)`` for member ``n`` of
pair ``p`` (see :mod:`.lowrank`). The shared ``h = x @ W.T`` is one large matmul; around it:

* :func:`launch_projection` computes ``xb = x @ B_p`` for every row, ``(M, r)`` float32, in one
  pass over ``x``;
* :func:`launch_correction` reads ``h`` once, adds the rank-``r`` correction, applies the
  activation and writes ``y`` (in place over ``h``), or only the row sums of ``y`` when a
  mean-of-outputs fitness is all that is needed. Inference pays the same pass for its activation.

Both work on blocks of rows that belong to one pair, so a block's factors are one ``(r, cols)``
slice, read from the ``(P, r, features)`` layout with a unit stride along features. The two jobs
are separate kernels because fusing them doubled the registers per thread (and so halved the
occupancy that a bandwidth-bound kernel depends on). Importing this module needs ``triton``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggroll_torch.random.triton_support import interpreting

ACTIVATIONS = {"identity": 0, "tanh": 1, "relu": 2}
_BLOCK_N = 128
_LAUNCH = {"num_warps": 4, "num_stages": 2}


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
def _dot(a, b, F32_DOT: tl.constexpr):
    # Operands hold values of the factors' dtype either way; F32_DOT multiplies them as exact
    # float32 with float32 accumulation instead of on half-precision tensor cores.
    if F32_DOT:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def _correction_kernel(
    h_ptr, y_ptr, xb_ptr, sign_ptr, a_ptr, rowsum_ptr,
    a_scale, rows_per_member, rank, a_stride_p, a_stride_k,
    ACT: tl.constexpr, WRITE_Y: tl.constexpr, ROWSUM: tl.constexpr, F32_DOT: tl.constexpr,
    COLS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, RP: tl.constexpr,
):
    row0 = tl.program_id(0) * BLOCK_M
    rows = row0 + tl.arange(0, BLOCK_M)
    pair = (row0 // (2 * rows_per_member)).to(tl.int64)
    ks = tl.arange(0, RP)
    row_base = rows.to(tl.int64)[:, None] * COLS
    # Upstream rounds x @ B to the factors' dtype; the sign flip is exact.
    xb = tl.load(xb_ptr + rows[:, None] * rank + ks[None, :], mask=ks[None, :] < rank, other=0.0)
    xb = xb.to(a_ptr.dtype.element_ty).to(tl.float32) * tl.load(sign_ptr + rows // rows_per_member)[:, None]
    xb = xb.to(a_ptr.dtype.element_ty)
    total = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for c0 in range(0, COLS, BLOCK_N):
        col = c0 + tl.arange(0, BLOCK_N)
        inside = col < COLS
        v = tl.load(h_ptr + row_base + col[None, :], mask=inside[None, :], other=0.0).to(tl.float32)
        a = tl.load(a_ptr + pair * a_stride_p + ks[:, None] * a_stride_k + col[None, :],
                    mask=(ks[:, None] < rank) & inside[None, :], other=0.0)
        a = (a.to(tl.float32) * a_scale).to(a.dtype)
        v += _dot(xb, a, F32_DOT)
        if ACT == 1:
            v = _tanh(v)
        if ACT == 2:
            v = tl.maximum(v, 0.0)
        y = v.to(y_ptr.dtype.element_ty)
        if WRITE_Y:
            tl.store(y_ptr + row_base + col[None, :], y, mask=inside[None, :])
        if ROWSUM:
            total += tl.sum(tl.where(inside[None, :], y.to(tl.float32), 0.0), axis=1)
    if ROWSUM:
        tl.store(rowsum_ptr + rows, total)


@triton.jit
def _projection_kernel(
    x_ptr, b_ptr, out_ptr, rows_per_member, rank, b_stride_p, b_stride_k,
    F32_DOT: tl.constexpr, COLS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    RP: tl.constexpr,
):
    row0 = tl.program_id(0) * BLOCK_M
    rows = row0 + tl.arange(0, BLOCK_M)
    pair = (row0 // (2 * rows_per_member)).to(tl.int64)
    ks = tl.arange(0, RP)
    row_base = rows.to(tl.int64)[:, None] * COLS
    acc = tl.zeros((BLOCK_M, RP), dtype=tl.float32)
    for c0 in range(0, COLS, BLOCK_N):
        col = c0 + tl.arange(0, BLOCK_N)
        inside = col < COLS
        x = tl.load(x_ptr + row_base + col[None, :], mask=inside[None, :], other=0.0)
        b = tl.load(b_ptr + pair * b_stride_p + ks[None, :] * b_stride_k + col[:, None],
                    mask=(ks[None, :] < rank) & inside[:, None], other=0.0)
        acc += _dot(x.to(b.dtype), b, F32_DOT)
    tl.store(out_ptr + rows[:, None] * rank + ks[None, :], acc, mask=ks[None, :] < rank)


def _padded(rank: int) -> int:
    return max(16, triton.next_power_of_2(rank))


def block_rows(rows_per_member: int) -> int | None:
    """Rows per program: 32 or 16, whichever divides a pair's ``2 * rows_per_member`` rows (so
    a program never mixes pairs), or None when neither does."""
    for block in (32, 16):
        if (2 * rows_per_member) % block == 0:
            return block
    return None


def _f32_dot(dtype: torch.dtype) -> bool:
    # Triton's interpreter multiplies half-precision dot operands wrongly; exact float32 products
    # of the same values keep the tests meaningful.
    return dtype == torch.float32 or interpreting()


def launch_projection(x: torch.Tensor, b_t: torch.Tensor, out: torch.Tensor, *, rows_per_member: int) -> None:
    """``out[m] = x[m] @ B_p`` for every row ``m`` of pair ``p``.

    x: ``(M, cols)`` contiguous; b_t: ``(P, r, cols)`` with a unit last stride; out: ``(M, r)``
    float32. The caller checks shapes and that :func:`block_rows` is not None.
    """
    m, cols = x.shape
    block_m = block_rows(rows_per_member)
    _projection_kernel[(m // block_m,)](
        x, b_t, out, rows_per_member, b_t.shape[1], b_t.stride(0), b_t.stride(1),
        F32_DOT=_f32_dot(b_t.dtype), COLS=cols, BLOCK_M=block_m, BLOCK_N=_BLOCK_N, RP=_padded(b_t.shape[1]),
        **_LAUNCH,
    )


def launch_correction(h: torch.Tensor, y: torch.Tensor | None, xb: torch.Tensor, signs: torch.Tensor,
                      a_scale: float, a_t: torch.Tensor, *, rows_per_member: int, activation: str,
                      rowsum: torch.Tensor | None = None) -> None:
    """``y = act(h + (signs_n * xb) @ (a_scale * A_p).T)`` over ``h`` ``(M, cols)``.

    y: like ``h`` (may be ``h`` itself) or None to skip writing it; xb: ``(M, r)`` float32;
    signs: ``(N,)`` float32 (+-1); a_scale: a float exactly representable in ``a_t``'s dtype;
    a_t: ``(P, r, cols)`` unit normals with a unit last stride; rowsum: ``(M,)`` float32 output
    of the row sums of ``y``, or None. The caller checks shapes and :func:`block_rows`.
    """
    m, cols = h.shape
    block_m = block_rows(rows_per_member)
    _correction_kernel[(m // block_m,)](
        h, y if y is not None else h, xb, signs, a_t, rowsum if rowsum is not None else xb,
        float(a_scale), rows_per_member, a_t.shape[1], a_t.stride(0), a_t.stride(1),
        ACT=ACTIVATIONS[activation], WRITE_Y=y is not None, ROWSUM=rowsum is not None,
        F32_DOT=_f32_dot(a_t.dtype), COLS=cols, BLOCK_M=block_m, BLOCK_N=_BLOCK_N, RP=_padded(a_t.shape[1]),
        **_LAUNCH,
    )
