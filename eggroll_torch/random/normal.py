"""``jax.random.normal`` for a batch of keys, bit for bit as XLA:CPU computes it."""
from __future__ import annotations

import math

import torch

from .float_bits import check_float_dtype, mantissa_index
from .keys import check_keys
from .normal_f64 import normal_f64_from_words
from .normal_tables import check_variant, normal_table, normal_values, table_is_cached
from .sampling import draw_lookup, draw_mapped
from .words import check_shape

# Until this many float32 values have been drawn on the CPU, they are computed directly
# (~0.5 us each) rather than by building the 2**23-entry table (~3 s); CUDA always uses the table.
_DIRECT_BUDGET = {"left": 1 << 21}


def _compute_directly(keys: torch.Tensor, shape: tuple[int, ...], variant: str) -> bool:
    if keys.device.type != "cpu" or table_is_cached(torch.float32, variant):
        return False
    draws = keys[..., 0].numel() * math.prod(shape)
    if draws > _DIRECT_BUDGET["left"]:
        return False
    _DIRECT_BUDGET["left"] -= draws
    return True


def normal(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, *,
           partitionable: bool | None = None, variant: str = "cpu") -> torch.Tensor:
    """``jax.random.normal(key, shape, dtype)`` for every key of the batch.

    keys: ``(*batch, 2)`` uint32. Returns ``(*batch, *shape)`` of ``dtype`` on the keys' device.
    ``variant="cpu"`` gives XLA:CPU's values (jax 0.10.2 on x86-64); ``variant="gpu"`` gives
    XLA:GPU's float32 values (jax 0.11.2 on an H100, see :mod:`gpu_variant`; float64 has none).
    """
    check_keys(keys)
    shape = check_shape(shape)
    fmt = check_float_dtype(dtype)
    check_variant(variant)
    if dtype == torch.float64:
        if variant != "cpu":
            raise ValueError(f"float64 normals exist only for variant='cpu'; got variant={variant!r}")
        return draw_mapped(keys, shape, fmt.draw_width, partitionable, normal_f64_from_words, dtype)
    if dtype == torch.float32 and _compute_directly(keys, shape, variant):
        words = draw_mapped(keys, shape, fmt.draw_width, partitionable, lambda w: w, torch.int32)
        return normal_values(mantissa_index(words, dtype), dtype, variant)
    table = normal_table(dtype, keys.device, variant)
    shift = fmt.draw_width - fmt.mantissa
    return draw_lookup(keys, shape, fmt.draw_width, partitionable, table, shift, (1 << fmt.mantissa) - 1)
