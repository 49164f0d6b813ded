"""``jax.random.bits`` mapped over a key batch."""
from __future__ import annotations

import torch

from .keys import check_keys
from .sampling import draw_words
from .words import check_shape

_WIDTHS = {torch.uint8: 8, torch.uint16: 16, torch.uint32: 32, torch.uint64: 64}


def _as_dtype(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.uint64:
        return words.view(torch.uint64)
    if dtype == torch.uint32:
        return words.contiguous().view(torch.uint32)
    if dtype == torch.uint16:
        # int32 -> uint16 conversion is missing on some devices; int16 wraps to the same bits.
        return words.to(torch.int16).view(torch.uint16)
    return (words & 0xFF).to(torch.uint8)


def bits(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.uint32, *,
         partitionable: bool | None = None) -> torch.Tensor:
    """``jax.random.bits(key, shape, dtype)`` for every key of the batch.

    keys: ``(*batch, 2)`` uint32. Returns ``(*batch, *shape)`` of ``dtype`` (uint8/16/32/64) on
    the keys' device. ``partitionable`` imitates ``jax_threefry_partitionable``.
    """
    check_keys(keys)
    shape = check_shape(shape)
    if dtype not in _WIDTHS:
        raise ValueError(f"dtype must be one of torch.uint8, uint16, uint32, uint64; got {dtype}")
    return _as_dtype(draw_words(keys, shape, _WIDTHS[dtype], partitionable), dtype)


