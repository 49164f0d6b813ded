"""Triton kernel: each key's Gumbel draws looked up from a table of every value, in one pass.

``es_random.gumbel``'s value depends only on the mantissa bits its uniform keeps of a threefry
word, so a table of every such value (:func:`eggroll_torch.llm.utils._gumbel_table`) indexed by
those bits of each word gives the same draws. The words are JAX's partitionable layout for a
draw of shape ``(n,)``: position ``j`` hashes the counter ``(0, j)`` and keeps ``y0 ^ y1``, with
the hash of :mod:`eggroll_torch.random.triton_normal`.

Importing this module needs ``triton``; callers check
:func:`eggroll_torch.random.triton_support.triton_usable` first.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggroll_torch.random.triton_normal import threefry2x32

__all__ = ["lookup"]

_BLOCK = 1024


@triton.jit
def _lookup_kernel(key_ptr, table_ptr, out_ptr, n, SHIFT: tl.constexpr, MASK: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    k0 = tl.load(key_ptr + 2 * row).to(tl.uint32, bitcast=True)
    k1 = tl.load(key_ptr + 2 * row + 1).to(tl.uint32, bitcast=True)
    counter = cols.to(tl.uint32, bitcast=True)
    y0, y1 = threefry2x32(k0, k1, tl.zeros_like(counter), counter)
    # Every index is inside the table, past-the-end columns too: only the store is masked.
    value = tl.load(table_ptr + (((y0 ^ y1) >> SHIFT) & MASK).to(tl.int32))
    tl.store(out_ptr + row.to(tl.int64) * n + cols, value, mask=cols < n)


def lookup(keys: torch.Tensor, n: int, table: torch.Tensor, shift: int, mask: int) -> torch.Tensor:
    """``table[(word >> shift) & mask]`` for the partitionable words of a draw of shape ``(n,)``
    per key: ``keys (B, 2)`` uint32 on CUDA, ``n < 2**31``; returns ``(B, n)`` of
    ``table.dtype``."""
    flat = keys.reshape(-1, 2).view(torch.int32).contiguous()
    out = torch.empty((flat.shape[0], n), dtype=table.dtype, device=keys.device)
    if out.numel():
        _lookup_kernel[(flat.shape[0], triton.cdiv(n, _BLOCK))](flat, table, out, n, SHIFT=shift, MASK=mask,
                                                               BLOCK=_BLOCK)
    return out
