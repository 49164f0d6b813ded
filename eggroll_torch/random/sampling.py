"""Drawing words for a batch of keys and turning them into samples, block by block.

Large draws are cut into blocks of about a million positions so that the threefry temporaries
stay in cache and peak memory stays near the size of the output; when the compiled backend
applies (see :mod:`config`), one fused kernel does the whole draw instead.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import compiled, config
from .counters import iota_range
from .keys import key_words
from .threefry import threefry2x32
from .words import random_words

_BLOCK = 1 << 20
_AUTO_COMPILE_MIN = 1 << 22


def _use_compiled(keys: torch.Tensor, n: int, width: int, partitionable: bool | None) -> bool:
    choice = config.backend()
    draws = n * keys[..., 0].numel()
    if choice == "eager" or draws == 0 or width > 32 or n >= 2**31:
        return False
    if not config.threefry_partitionable(partitionable):
        return False
    if choice in ("auto", "kernel") and (keys.device.type != "cuda" or draws < _AUTO_COMPILE_MIN):
        return False
    return compiled.available(keys.device)


def _flat_keys(keys: torch.Tensor) -> torch.Tensor:
    return keys.reshape(-1, 2).view(torch.int32).contiguous()


def draw_mapped(keys: torch.Tensor, shape: tuple[int, ...], width: int, partitionable: bool | None,
                finish: Callable[[torch.Tensor], torch.Tensor], out_dtype: torch.dtype) -> torch.Tensor:
    """``finish(words)`` for the words of every key, computed in blocks; ``(*batch, *shape)``.

    ``finish`` maps int words of :func:`words.random_words` elementwise to ``out_dtype``.
    """
    batch = tuple(keys.shape[:-1])
    n = math.prod(shape)
    flat = keys.reshape(-1, 2)
    out = torch.empty((flat.shape[0], n), dtype=out_dtype, device=keys.device)
    if out.numel() == 0:
        return out.reshape(batch + shape)
    if not config.threefry_partitionable(partitionable) or width == 64:
        out.copy_(finish(random_words(flat, (n,), width, partitionable)))
        return out.reshape(batch + shape)
    rows = max(1, _BLOCK // n)
    cols = min(n, _BLOCK)
    k0, k1 = key_words(flat)
    for r0 in range(0, flat.shape[0], rows):
        for c0 in range(0, n, cols):
            c1 = min(n, c0 + cols)
            words = _partitionable_slice(k0[r0:r0 + rows], k1[r0:r0 + rows], c0, c1)
            out[r0:r0 + rows, c0:c1] = finish(words)
    return out.reshape(batch + shape)


def _partitionable_slice(k0: torch.Tensor, k1: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """XOR-folded words of flat positions ``[start, stop)`` for keys (B,): (B, stop - start) int32."""
    hi, lo = iota_range(start, stop, k0.device)
    y0, y1 = threefry2x32(k0[:, None], k1[:, None], hi, lo)
    return y0.bitwise_xor_(y1)


def draw_words(keys: torch.Tensor, shape: tuple[int, ...], width: int,
               partitionable: bool | None) -> torch.Tensor:
    """The int words of :func:`words.random_words`, with blocks or a compiled kernel for big draws."""
    n = math.prod(shape)
    batch = tuple(keys.shape[:-1])
    if _use_compiled(keys, n, width, partitionable):
        return compiled.words(_flat_keys(keys), n).reshape(batch + shape)
    out_dtype = torch.int64 if width == 64 else torch.int32
    return draw_mapped(keys, shape, width, partitionable, lambda w: w, out_dtype)


def draw_lookup(keys: torch.Tensor, shape: tuple[int, ...], width: int, partitionable: bool | None,
                table: torch.Tensor, shift: int, mask: int) -> torch.Tensor:
    """``table[(word >> shift) & mask]`` for every draw: ``(*batch, *shape)`` of ``table.dtype``."""
    n = math.prod(shape)
    batch = tuple(keys.shape[:-1])
    if _use_compiled(keys, n, width, partitionable):
        return compiled.lookup(_flat_keys(keys), n, table, shift, mask).reshape(batch + shape)
    return draw_mapped(keys, shape, width, partitionable,
                       lambda w: table[((w >> shift) & mask).long()], table.dtype)
