"""Triton kernel: a population's low-rank term added to the shared product in one pass.

``out[n, t] += round(left[n, t] @ right[n])`` for every member ``n`` and row ``t``, where ``out``
is the shared GEMM's result, already rounded to its dtype, ``left (N, T, r)`` and ``right (N, r,
m)``. The rank-``r`` product is summed in float32 and rounded to the dtype, then added to ``out``
in float32 and rounded again: the reference's two roundings (``x @ W.T + (x @ B) @ A.T``
rounds the product before the sum), where torch's ``baddbmm`` would round once. Only the order
of the ``r`` terms of the sum can differ from a matmul's. One read and one write of ``out``
replace the product's write and the addition's two reads and write.

:func:`add_projected_product_` also forms ``left = x @ first`` itself, for row counts where
that rank projection is a batch of dot products too small to be worth its own kernel (a
generation's token step: one row per member).

Importing this module needs ``triton``; callers check
:func:`eggroll_torch.random.triton_support.triton_usable` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["round_to", "supports", "supports_projected", "add_member_product_", "add_projected_product_"]

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Ranks up to this are unrolled in the kernel; larger ones use the matmuls.
_MAX_RANK = 64
_BLOCK_ROWS = 32
_BLOCK_COLS = 128
# The projecting kernel recomputes its rows' ``x @ first`` in every column block, as a GEMM
# re-reads its rows of ``x`` per output tile. It is used up to these sizes, for token steps (one
# row per member; measured at 512); a forward over many tokens keeps the batched matmul.
_PROJECT_MAX_ROWS = 4096
_PROJECT_MAX_COLS = 4096
# Its tiles: a token step has one row per member, so few rows per program give enough programs
# to fill the GPU, and wide column and inner blocks keep the recomputation and the loop short.
# On an H100 (bfloat16, 512 rows, rank 1) these took 2.5-4.6 us against 5.9-9.8 us for the
# batched matmul plus the plain kernel, and 7.2-22.5 us for the plain kernel's 32 x 128 tiles.
_PROJECT_BLOCK_ROWS = 4
_PROJECT_BLOCK_COLS = 256
_PROJECT_BLOCK_INNER = 256


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
def _add_rounded_product(out_ptr, row, col, cols, mask, product):
    """``out[row, col] = round(out + round(product))`` over one block."""
    dtype = out_ptr.dtype.element_ty
    at = out_ptr + row[:, None] * cols + col[None, :]
    shared = tl.load(at, mask=mask, other=0.0).to(tl.float32)
    tl.store(at, round_to(shared + round_to(product, dtype).to(tl.float32), dtype), mask=mask)


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
    _add_rounded_product(out_ptr, row, col, cols, mask, product)


@triton.jit
def _add_projected_kernel(out_ptr, x_ptr, first_ptr, right_ptr, rows, rows_per_member, inner, cols,
                          x_row_stride, first_member_stride, first_inner_stride, first_rank_stride,
                          right_member_stride, right_rank_stride, right_col_stride,
                          RANK: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_INNER: tl.constexpr,
                          BLOCK_COLS: tl.constexpr):
    # Column blocks vary fastest, so the programs that share a block of rows run together and
    # find its x and first in cache.
    col = tl.program_id(0) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    row = tl.program_id(1).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = row < rows
    mask = row_ok[:, None] & (col < cols)[None, :]
    member = row // rows_per_member
    dtype = out_ptr.dtype.element_ty
    right_at = right_ptr + member[:, None] * right_member_stride + col[None, :] * right_col_stride
    product = tl.zeros((BLOCK_ROWS, BLOCK_COLS), dtype=tl.float32)
    for k in tl.static_range(RANK):
        dot = tl.zeros((BLOCK_ROWS, BLOCK_INNER), dtype=tl.float32)
        for start in range(0, inner, BLOCK_INNER):
            i = start + tl.arange(0, BLOCK_INNER)
            at = row_ok[:, None] & (i < inner)[None, :]
            x = tl.load(x_ptr + row[:, None] * x_row_stride + i[None, :], mask=at, other=0.0)
            f = tl.load(first_ptr + member[:, None] * first_member_stride + i[None, :] * first_inner_stride
                        + k * first_rank_stride, mask=at, other=0.0)
            dot += x.to(tl.float32) * f.to(tl.float32)
        # The projection is rounded to the dtype, as the matmul it replaces returns it.
        left = round_to(tl.sum(dot, axis=1), dtype).to(tl.float32)
        right = tl.load(right_at + k * right_rank_stride, mask=mask, other=0.0).to(tl.float32)
        product += left[:, None] * right
    _add_rounded_product(out_ptr, row, col, cols, mask, product)


def _takes(out: torch.Tensor, right: torch.Tensor, *operands: torch.Tensor) -> bool:
    """One supported dtype and device for all, ``out`` contiguous with a member axis,
    ``right (N, r, m)`` with ``0 < r <= 64``, nothing requiring grad."""
    tensors = (out, right, *operands)
    if out.dtype not in _DTYPES or any(t.dtype != out.dtype or t.device != out.device for t in tensors):
        return False
    if not out.is_contiguous() or any(t.requires_grad for t in tensors) or right.ndim != 3 or out.ndim < 2:
        return False
    n, rank, m = right.shape
    return out.shape[0] == n and out.shape[-1] == m and 0 < rank <= _MAX_RANK


def supports(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> bool:
    """Whether :func:`add_member_product_` takes these: one dtype (float32, bfloat16 or
    float16) and device, ``out (N, ..., m)`` contiguous, ``left (N, ..., r)`` with ``out``'s
    leading axes, ``right (N, r, m)``, ``r <= 64``, and nothing requiring grad."""
    return _takes(out, right, left) and left.shape[:-1] == out.shape[:-1] and left.shape[-1] == right.shape[1]


def add_member_product_(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``out += left @ right`` per member, in place, rounded as described above (see
    :func:`supports` for the arguments); returns ``out``."""
    if out.numel() == 0:
        return out
    members, cols = out.shape[0], out.shape[-1]
    rows = out.numel() // cols
    flat_left = left.reshape(rows, left.shape[-1])
    if flat_left.stride(-1) != 1:
        flat_left = flat_left.contiguous()
    grid = (triton.cdiv(rows, _BLOCK_ROWS), triton.cdiv(cols, _BLOCK_COLS))
    _add_product_kernel[grid](out, flat_left, right, rows, rows // members, cols, flat_left.stride(0),
                              *right.stride(), RANK=right.shape[1], BLOCK_ROWS=_BLOCK_ROWS,
                              BLOCK_COLS=_BLOCK_COLS, num_warps=4)
    return out


def supports_projected(out: torch.Tensor, x: torch.Tensor, first: torch.Tensor, right: torch.Tensor) -> bool:
    """Whether :func:`add_projected_product_` takes these: as :func:`supports` with ``left =
    x @ first``, ``x (N, ..., k)`` with ``out``'s leading axes and ``first (N, k, r)``, at most
    4096 rows and 4096 columns."""
    if not _takes(out, right, x, first) or first.ndim != 3 or x.shape[:-1] != out.shape[:-1]:
        return False
    if first.shape != (out.shape[0], x.shape[-1], right.shape[1]):
        return False
    cols = out.shape[-1]
    return cols <= _PROJECT_MAX_COLS and out.numel() <= _PROJECT_MAX_ROWS * cols


def add_projected_product_(out: torch.Tensor, x: torch.Tensor, first: torch.Tensor, right: torch.Tensor
                           ) -> torch.Tensor:
    """``out += (x @ first) @ right`` per member, in place, in one kernel: ``x @ first`` summed
    in float32 and rounded to the dtype, then added as :func:`add_member_product_` adds it (see
    :func:`supports_projected` for the arguments); returns ``out``."""
    if out.numel() == 0:
        return out
    members, cols = out.shape[0], out.shape[-1]
    rows = out.numel() // cols
    flat_x = x.reshape(rows, x.shape[-1])
    if flat_x.stride(-1) != 1:
        flat_x = flat_x.contiguous()
    grid = (triton.cdiv(cols, _PROJECT_BLOCK_COLS), triton.cdiv(rows, _PROJECT_BLOCK_ROWS))
    _add_projected_kernel[grid](out, flat_x, first, right, rows, rows // members, flat_x.shape[1], cols,
                                flat_x.stride(0), *first.stride(), *right.stride(), RANK=right.shape[1],
                                BLOCK_ROWS=_PROJECT_BLOCK_ROWS, BLOCK_INNER=_PROJECT_BLOCK_INNER,
                                BLOCK_COLS=_PROJECT_BLOCK_COLS, num_warps=4)
    return out
