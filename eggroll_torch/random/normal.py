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

_TABLE_MIN_DRAWS = 1 << 20


def _draws(keys: torch.Tensor, shape: tuple[int, ...]) -> int:
    return keys[..., 0].numel() * math.prod(shape)


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
    if dtype == torch.float32 and not table_is_cached(dtype, variant) and _draws(keys, shape) < _TABLE_MIN_DRAWS:
        # Building the 2**23-entry table costs about as much as emulating 2**23 draws directly.
        words = draw_mapped(keys, shape, fmt.draw_width, partitionable, lambda w: w, torch.int32)
        return normal_values(mantissa_index(words, dtype), dtype, variant).to(keys.device)
    table = normal_table(dtype, keys.device, variant)
    shift = fmt.draw_width - fmt.mantissa
    return draw_lookup(keys, shape, fmt.draw_width, partitionable, table, shift, (1 << fmt.mantissa) - 1)
