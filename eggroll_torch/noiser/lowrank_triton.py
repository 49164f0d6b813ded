"""Triton kernel: a population's low-rank term added to the shared product in one pass.

``out[n, t] += round(left[n, t] @ right[n])`` for every member ``n`` and row ``t``, where ``out``
is the shared GEMM's result, already rounded to its dtype, ``left (N, T, r)`` and ``right (N, r,
m)``. The rank-``r`` product is summed in float32 and rounded to the dtype, then added to ``out``
in float32 and rounded again: the reference's two roundings (``x @ W.T + (x @ B) @ A.T``
rounds the product before the sum), where torch's ``baddbmm`` would round once. Only the order
of the ``r`` terms of the sum can differ from a matmul's. One read and one write of ``out``
replace the product's write and the addition's two reads and write.

Importing this module needs ``triton``; callers check
:func:`eggroll_torch.random.triton_support.triton_usable` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["round_to", "supports", "add_member_product_"]

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Ranks up to this are unrolled in the kernel; larger ones use the matmuls.
_MAX_RANK = 64
_BLOCK_ROWS = 32
_BLOCK_COLS = 128


@triton.jit
def round_to(value, dtype: tl.constexpr):
    """float32 ``value`` rounded to nearest even in ``dtype`` (spelled out for bfloat16, whose
    conversion Triton's interpreter truncates)."""
    if dtype == tl.bfloat16:
        bits = value.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return bits.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return value.to(dtype)


@triton.jit
def _add_product_kernel(out_ptr, left_ptr, right_ptr, rows, rows_per_member, cols,
                        left_row_stride, right_member_stride, right_rank_stride, right_col_stride,
                        RANK: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    col = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    row_ok = row < rows
    mask = row_ok[:, None] & (col < cols)[None, :]
    member = row // rows_per_member
    right_at = right_ptr + member[:, None] * right_member_stride + col[None, :] * right_col_stride
    product = tl.zeros((BLOCK_ROWS, BLOCK_COLS), dtype=tl.float32)
    for k in tl.static_range(RANK):
        left = tl.load(left_ptr + row * left_row_stride + k, mask=row_ok, other=0.0).to(tl.float32)
        right = tl.load(right_at + k * right_rank_stride, mask=mask, other=0.0).to(tl.float32)
        product += left[:, None] * right
    dtype = out_ptr.dtype.element_ty
    at = out_ptr + row[:, None] * cols + col[None, :]
    shared = tl.load(at, mask=mask, other=0.0).to(tl.float32)
    tl.store(at, round_to(shared + round_to(product, dtype).to(tl.float32), dtype), mask=mask)


def supports(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> bool:
    """Whether :func:`add_member_product_` takes these: one dtype (float32, bfloat16 or
    float16) and device, ``out (N, ..., m)`` contiguous, ``left (N, ..., r)`` with ``out``'s
    leading axes, ``right (N, r, m)``, ``r <= 64``, and nothing requiring grad."""
    if out.dtype not in _DTYPES or left.dtype != out.dtype or right.dtype != out.dtype:
        return False
    if not out.is_contiguous() or any(t.requires_grad for t in (out, left, right)):
        return False
    if left.device != out.device or right.device != out.device or right.ndim != 3:
        return False
    n, rank, m = right.shape
    return (out.ndim >= 2 and left.shape[:-1] == out.shape[:-1] and out.shape[0] == n and out.shape[-1] == m
            and left.shape[-1] == rank and 0 < rank <= _MAX_RANK)


def add_member_product_(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``out += left @ right`` per member, in place, rounded as described above (see
    :func:`supports` for the arguments); returns ``out``."""
    members, cols = out.shape[0], out.shape[-1]
    rows = out.numel() // cols
    flat_left = left.reshape(rows, left.shape[-1])
    if flat_left.stride(-1) != 1:
        flat_left = flat_left.contiguous()
    if rows == 0 or cols == 0:
        return out
    grid = (triton.cdiv(rows, _BLOCK_ROWS), triton.cdiv(cols, _BLOCK_COLS))
    _add_product_kernel[grid](out, flat_left, right, rows, rows // members, cols, flat_left.stride(0),
                              *right.stride(), RANK=right.shape[1], BLOCK_ROWS=_BLOCK_ROWS,
                              BLOCK_COLS=_BLOCK_COLS, num_warps=4)
    return out
