"""``jax.random.normal`` for a batch of keys, bit for bit as XLA:CPU computes it."""
from __future__ import annotations

import torch

from .float_bits import check_float_dtype
from .keys import check_keys
from .normal_f64 import normal_f64_from_words
from .normal_tables import normal_table
from .sampling import draw_lookup, draw_mapped
from .words import check_shape


def normal(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, *,
           partitionable: bool | None = None, variant: str = "cpu") -> torch.Tensor:
    """``jax.random.normal(key, shape, dtype)`` for every key of the batch.

    keys: ``(*batch, 2)`` uint32. Returns ``(*batch, *shape)`` of ``dtype`` on the keys' device.
    ``variant="cpu"`` gives XLA:CPU's values (jax 0.10.2 on x86-64).
    """
    check_keys(keys)
    shape = check_shape(shape)
    fmt = check_float_dtype(dtype)
    if dtype == torch.float64:
        return draw_mapped(keys, shape, fmt.draw_width, partitionable, normal_f64_from_words, dtype)
    table = normal_table(dtype, keys.device, variant)
    shift = fmt.draw_width - fmt.mantissa
    return draw_lookup(keys, shape, fmt.draw_width, partitionable, table, shift, (1 << fmt.mantissa) - 1)
