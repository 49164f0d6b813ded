"""Counter layouts that feed the threefry hash."""
from __future__ import annotations

import math

import torch


def iota_range(start: int, stop: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 64-bit indices ``start..stop-1`` as (high, low) int32 words, each of shape (stop - start,)."""
    index = torch.arange(start, stop, dtype=torch.int64, device=device)
    low = index.to(torch.int32)
    if stop <= 2**32:
        return torch.zeros((), dtype=torch.int32, device=device).expand(low.shape), low
    return (index >> 32).to(torch.int32), low


def iota_2x32(shape: tuple[int, ...], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 64-bit row-major index of every position in ``shape`` as (high, low) int32 words.

    This is JAX's ``iota_2x32_shape``: the counters of the partitionable threefry layout.
    """
    high, low = iota_range(0, math.prod(shape), device)
    return high.reshape(shape), low.reshape(shape)
