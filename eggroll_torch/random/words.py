"""Random 32/64-bit words for a key batch in both threefry layouts (the core of ``jax.random.bits``)."""
from __future__ import annotations

import math

import torch

from . import config
from .counters import iota_2x32
from .keys import hash_iota, key_words
from .threefry import threefry2x32


def check_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """A sample shape as a tuple of non-negative ints (an int means a 1-D shape)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"{name} must be a tuple of non-negative ints; got {shape!r}")
    return dims


def _partitionable_words(k0, k1, shape, width):
    """Per-position hash of the 64-bit index; 64-bit draws use both output words."""
    lead = (...,) + (None,) * len(shape)
    hi, lo = iota_2x32(shape, k0.device)
    y0, y1 = threefry2x32(k0[lead], k1[lead], hi, lo)
    if width == 64:
        return (y0.to(torch.int64) << 32) | (y1.to(torch.int64) & 0xFFFFFFFF)
    return y0.bitwise_xor_(y1)


def _stream_words(k0, k1, shape, width):
    """One hashed stream of 32-bit words per key, sliced into ``width``-bit fields."""
    size = math.prod(shape)
    batch = k0.shape
    words_needed = -(-width * size // 32)
    words = hash_iota(k0[..., None], k1[..., None], words_needed)
    if width == 64:
        high, low = words[..., :size], words[..., size:]
        out = (high.to(torch.int64) << 32) | (low.to(torch.int64) & 0xFFFFFFFF)
    elif width == 32:
        out = words
    else:
        # Each word yields 32/width fields, least significant first.
        per = 32 // width
        shifts = torch.arange(per, dtype=torch.int32, device=k0.device) * width
        fields = (words[..., None] >> shifts) & ((1 << width) - 1)
        out = fields.reshape(tuple(batch) + (words_needed * per,))[..., :size]
    return out.reshape(tuple(batch) + shape)


def random_words(keys: torch.Tensor, shape: tuple[int, ...], width: int,
                 partitionable: bool | None = None) -> torch.Tensor:
    """Bits as signed words: int32 for widths 8/16/32 (only the low ``width`` bits are the draw),
    int64 for width 64. Shape ``(*batch, *shape)``."""
    k0, k1 = key_words(keys)
    if config.threefry_partitionable(partitionable):
        return _partitionable_words(k0, k1, shape, width)
    return _stream_words(k0, k1, shape, width)
