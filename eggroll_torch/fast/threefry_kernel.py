"""Triton kernel: every member's low-rank noise for a group of layers, hashed and mapped to
normals in one launch, bit for bit equal to :func:`eggroll_torch.random.normal`.

For layer ``l`` with key ``k_l``, antithetic pair ``p`` and ``true_epoch`` (the epoch divided by
``noise_reuse``, or 0), the member key is ``fold_in(fold_in(k_l, true_epoch), p)`` and the draw
is ``normal(member_key, (rows, cols), dtype)`` in JAX's partitionable threefry layout: the value
at ``(j, k)`` hashes the counter ``(0, j * cols + k)`` and keeps ``y0 ^ y1``. A float normal is a
function of the mantissa bits of that word, so it is read from the same lookup table
``eggroll_torch.random`` uses; that makes the kernel exact by construction, whatever the table.

Importing this module needs ``triton``; callers check :func:`._triton.triton_usable` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 1024


@triton.jit
def _rotl(x, r: tl.constexpr):
    return (x << r) | (x >> (32 - r))


@triton.jit
def _round4(y0, y1, r0: tl.constexpr, r1: tl.constexpr, r2: tl.constexpr, r3: tl.constexpr):
    y0 = y0 + y1
    y1 = _rotl(y1, r0) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r1) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r2) ^ y0
    y0 = y0 + y1
    y1 = _rotl(y1, r3) ^ y0
    return y0, y1


@triton.jit
def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds on uint32 values (scalars or blocks that broadcast)."""
    k2 = k0 ^ k1 ^ tl.full((), 0x1BD11BDA, tl.uint32)
    y0 = x0 + k0
    y1 = x1 + k1
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k1
    y1 = y1 + k2 + 1
    y0, y1 = _round4(y0, y1, 17, 29, 16, 24)
    y0 = y0 + k2
    y1 = y1 + k0 + 2
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k0
    y1 = y1 + k1 + 3
    y0, y1 = _round4(y0, y1, 17, 29, 16, 24)
    y0 = y0 + k1
    y1 = y1 + k2 + 4
    y0, y1 = _round4(y0, y1, 13, 15, 26, 6)
    y0 = y0 + k2
    y1 = y1 + k0 + 5
    return y0, y1


@triton.jit
def _member_key(key_ptr, layer, epoch_ptr, pair, NOISE_REUSE: tl.constexpr):
    """``fold_in(fold_in(key[layer], true_epoch), pair)`` as two uint32 scalars."""
    k0 = tl.load(key_ptr + 2 * layer).to(tl.uint32, bitcast=True)
    k1 = tl.load(key_ptr + 2 * layer + 1).to(tl.uint32, bitcast=True)
    zero = tl.full((), 0, tl.uint32)
    if NOISE_REUSE == 0:
        true_epoch = zero
    else:
        true_epoch = (tl.load(epoch_ptr) // NOISE_REUSE).to(tl.uint32, bitcast=True)
    e0, e1 = threefry2x32(k0, k1, zero, true_epoch)
    return threefry2x32(e0, e1, zero, pair.to(tl.uint32, bitcast=True))


@triton.jit
def _normals_kernel(
    key_ptr, epoch_ptr, table_ptr, out_ptr,
    cols, stride_l, stride_p, stride_row, stride_col,
    NOISE_REUSE: tl.constexpr, SHIFT: tl.constexpr, MASK: tl.constexpr, ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pair = tl.program_id(0)
    col = tl.program_id(1)
    layer = tl.program_id(2)
    # The member key costs two hashes; one program spends it on a whole column of the draw,
    # whose stores are contiguous in the (.., cols, rows) layout the factors use.
    m0, m1 = _member_key(key_ptr, layer, epoch_ptr, pair, NOISE_REUSE)
    dest = out_ptr + layer.to(tl.int64) * stride_l + pair.to(tl.int64) * stride_p + col * stride_col
    for r0 in range(0, ROWS, BLOCK):
        row = r0 + tl.arange(0, BLOCK)
        valid = row < ROWS
        counter = (row * cols + col).to(tl.uint32, bitcast=True)
        y0, y1 = threefry2x32(m0, m1, tl.zeros_like(counter), counter)
        mantissa = ((y0 ^ y1) >> SHIFT) & MASK
        value = tl.load(table_ptr + mantissa.to(tl.int32, bitcast=True), mask=valid)
        tl.store(dest + row * stride_row, value, mask=valid)


def launch_normals(layer_keys: torch.Tensor, epoch: torch.Tensor, table: torch.Tensor, out: torch.Tensor,
                   *, noise_reuse: int, shift: int, mask: int) -> None:
    """Fill ``out`` of shape ``(L, P, rows, cols)`` (any strides) with the draws described above.

    ``layer_keys``: ``(L, 2)`` uint32; ``epoch``: int32 tensor of one element on ``out``'s device
    (read by the kernel, so a CUDA graph replay can advance it); ``table``: the normal lookup
    table of ``out.dtype``; ``shift``/``mask`` pick the mantissa bits of a hashed word.
    """
    layers, pairs, rows, cols = out.shape
    _normals_kernel[(pairs, cols, layers)](
        layer_keys.view(torch.int32), epoch, table, out,
        cols, out.stride(0), out.stride(1), out.stride(2), out.stride(3),
        NOISE_REUSE=noise_reuse, SHIFT=shift, MASK=mask, ROWS=rows, BLOCK=min(_BLOCK, triton.next_power_of_2(rows)),
    )
