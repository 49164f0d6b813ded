"""Counter layouts that feed the threefry hash."""
from __future__ import annotations

import math

import torch


def iota_2x32(shape: tuple[int, ...], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 64-bit row-major index of every position in ``shape`` as (high, low) int32 words.

    This is JAX's ``iota_2x32_shape``: the counters of the partitionable threefry layout.
    """
    n = math.prod(shape)
    index = torch.arange(n, dtype=torch.int64, device=device)
    low = index.to(torch.int32).reshape(shape)
    if n <= 2**32:
        high = torch.zeros((), dtype=torch.int32, device=device).expand(shape)
    else:
        high = (index >> 32).to(torch.int32).reshape(shape)
    return high, low
