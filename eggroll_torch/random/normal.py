"""``jax.random.normal`` for a batch of keys, bit for bit as XLA:CPU computes it."""
from __future__ import annotations

import torch

from .bits import check_shape, random_words
from .float_bits import check_float_dtype, mantissa_index
from .keys import check_keys
from .normal_tables import normal_table


def normal_from_words(words: torch.Tensor, dtype: torch.dtype, variant: str = "cpu") -> torch.Tensor:
    """Standard normals of ``dtype`` from :func:`bits.random_words` output of the dtype's width."""
    if dtype == torch.float64:
        from .normal_f64 import normal_f64_from_words

        return normal_f64_from_words(words)
    table = normal_table(dtype, words.device, variant)
    return table[mantissa_index(words, dtype).long()]


def normal(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, *,
           partitionable: bool | None = None, variant: str = "cpu") -> torch.Tensor:
    """``jax.random.normal(key, shape, dtype)`` for every key of the batch.

    keys: ``(*batch, 2)`` uint32. Returns ``(*batch, *shape)`` of ``dtype`` on the keys' device.
    ``variant="cpu"`` gives XLA:CPU's values (jax 0.10.2 on x86-64).
    """
    check_keys(keys)
    shape = check_shape(shape)
    fmt = check_float_dtype(dtype)
    words = random_words(keys, shape, fmt.draw_width, partitionable)
    return normal_from_words(words, dtype, variant)
