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

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        shape (int | tuple[int, ...]): sample shape per key, non-negative ints. Default ``()``.
        dtype (torch.dtype): ``torch.uint8``, ``uint16``, ``uint32`` (default) or ``uint64``.
        partitionable (bool | None): the ``jax_threefry_partitionable`` setting to imitate;
            ``None`` (default) uses :func:`set_threefry_partitionable`'s.

    Returns:
        torch.Tensor: random bits of shape ``(*batch, *shape)`` and ``dtype`` on the keys'
        device; entry ``[i, ...]`` is ``jax.random.bits(keys[i], shape, dtype)``.

    Raises:
        TypeError: ``keys`` is not a key batch; ``partitionable`` is not a bool or ``None``.
        ValueError: ``shape`` is not non-negative ints; ``dtype`` is not an unsigned type above.
    """
    check_keys(keys)
    shape = check_shape(shape)
    if dtype not in _WIDTHS:
        raise ValueError(f"dtype must be one of torch.uint8, uint16, uint32, uint64; got {dtype}")
    return _as_dtype(draw_words(keys, shape, _WIDTHS[dtype], partitionable), dtype)


