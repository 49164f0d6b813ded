"""Triton kernel: every member's low-rank noise for a group of layers, hashed and mapped to
normals in one launch, bit for bit equal to :func:`eggroll_torch.random.normal`.

For layer ``l`` with key ``k_l``, antithetic pair ``p`` and ``true_epoch`` (the epoch divided by
``noise_reuse``, or 0), the member key is ``fold_in(fold_in(k_l, true_epoch), p)`` and the draw
is ``normal(member_key, (rows, cols), dtype)`` in JAX's partitionable threefry layout: the value
at ``(j, k)`` hashes the counter ``(0, j * cols + k)`` and keeps ``y0 ^ y1``; the word becomes a
normal exactly as in :mod:`eggroll_torch.random.triton_normal` (float32 computed, 16-bit dtypes
from their tables), whose hash and arithmetic this kernel shares.

Importing this module needs ``triton``; callers check ``triton_support.triton_usable`` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggroll_torch.noiser.lowrank_triton import round_to
from eggroll_torch.random.float_bits import FORMATS
from eggroll_torch.random.triton_normal import finish, finishing, launch_shape, threefry2x32



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
    scaled_ptr, scale, split, sc_stride_l, sc_stride_p, sc_stride_row, sc_stride_col,
    NOISE_REUSE: tl.constexpr, SHIFT: tl.constexpr, MASK: tl.constexpr, MODE: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr, SCALED: tl.constexpr,
):
    pair = tl.program_id(0)
    col = tl.program_id(1)
    layer = tl.program_id(2)
    # The member key costs two hashes; one program spends it on a whole column of the draw,
    # whose stores are contiguous in the (.., cols, rows) layout the factors use.
    m0, m1 = _member_key(key_ptr, layer, epoch_ptr, pair, NOISE_REUSE)
    dest = out_ptr + layer.to(tl.int64) * stride_l + pair.to(tl.int64) * stride_p + col * stride_col
    if SCALED:
        scaled_dest = (scaled_ptr + layer.to(tl.int64) * sc_stride_l + pair.to(tl.int64) * sc_stride_p
                       + col * sc_stride_col)
    for r0 in range(0, ROWS, BLOCK):
        row = r0 + tl.arange(0, BLOCK)
        valid = row < ROWS
        counter = (row * cols + col).to(tl.uint32, bitcast=True)
        y0, y1 = threefry2x32(m0, m1, tl.zeros_like(counter), counter)
        value = finish(y0 ^ y1, table_ptr, SHIFT, MASK, MODE)
        if SCALED:
            tl.store(dest + row * stride_row, value, mask=valid & (row < split))
        else:
            tl.store(dest + row * stride_row, value, mask=valid)
        if SCALED:
            # One rounded product in the output dtype, as torch's `value * scale` gives it: the
            # float32 product rounded to nearest even.
            product = round_to(value.to(tl.float32) * scale, out_ptr.dtype.element_ty)
            tl.store(scaled_dest + (row - split) * sc_stride_row, product, mask=valid & (row >= split))


def launch_normals(layer_keys: torch.Tensor, epoch: torch.Tensor, out: torch.Tensor,
                   *, noise_reuse: int, variant: str, scaled: tuple | None = None) -> None:
    """Fill ``out`` of shape ``(L, P, rows, cols)`` (any strides) with the draws described above.

    ``layer_keys``: ``(L, 2)`` uint32; ``epoch``: int32 tensor of one element on ``out``'s device
    (read by the kernel, so a CUDA graph replay can advance it); ``variant``: ``"cpu"`` or
    ``"gpu"`` (see ``eggroll_torch.random``). ``scaled``: ``(tensor, split, scale)`` splits the
    draw of ``split + tensor.shape[2]`` rows: rows ``j < split`` go to ``out``
    (``(L, P, split, cols)``), the others, times ``scale`` and rounded to ``out``'s dtype, to
    ``tensor[..., j - split, :]`` (``tensor``: ``(L, P, rows - split, cols)``, any strides;
    ``scale`` a float exactly representable in that dtype).
    """
    layers, pairs, rows, cols = out.shape
    how = finishing(out.dtype, variant, out.device)
    fmt = FORMATS[out.dtype]
    target, split, scale = scaled if scaled is not None else (out, 0, 1.0)
    if scaled is not None:
        rows = split + target.shape[2]
    block, warps = launch_shape(rows)
    _normals_kernel[(pairs, cols, layers)](
        layer_keys.view(torch.int32), epoch, how.table, out,
        cols, out.stride(0), out.stride(1), out.stride(2), out.stride(3),
        target, float(scale), split, target.stride(0), target.stride(1), target.stride(2), target.stride(3),
        NOISE_REUSE=noise_reuse, SHIFT=fmt.shift, MASK=fmt.mask, MODE=how.mode, ROWS=rows, BLOCK=block,
        SCALED=scaled is not None, num_warps=warps, enable_fp_fusion=False,
    )
