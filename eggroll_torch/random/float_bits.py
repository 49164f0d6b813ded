"""From random words to floats in [1, 2): JAX's mantissa-filling step, per float dtype.

``jax.random.uniform`` draws ``nbits`` random bits (8 for bfloat16, whose 7-bit mantissa is
served by an 8-bit draw), keeps the top ``nmant`` of them as the mantissa of a float with
exponent 0, and works from there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """How one float dtype is filled from random bits."""

    draw_width: int  # bits drawn per value (the width of jax.random.bits used)
    mantissa: int  # mantissa bits kept, the top ones of the draw
    one: int  # bit pattern of 1.0
    int_view: torch.dtype  # signed integer dtype of the same size, for the bitcast

    @property
    def shift(self) -> int:
        """How far a drawn word is shifted right to bring its kept mantissa bits to the bottom."""
        return self.draw_width - self.mantissa

    @property
    def mask(self) -> int:
        """The mantissa bits once shifted: ``(word >> shift) & mask`` indexes the normal tables."""
        return (1 << self.mantissa) - 1


FORMATS = {
    torch.float32: FloatFormat(32, 23, 0x3F800000, torch.int32),
    torch.float16: FloatFormat(16, 10, 0x3C00, torch.int16),
    torch.bfloat16: FloatFormat(8, 7, 0x3F80, torch.int16),
    torch.float64: FloatFormat(64, 52, 0x3FF0000000000000, torch.int64),
}


def check_float_dtype(dtype, name: str = "dtype") -> FloatFormat:
    """The :class:`FloatFormat` of a supported float dtype, or a ValueError naming the choices."""
    if dtype not in FORMATS:
        raise ValueError(f"{name} must be torch.float32, float16, bfloat16 or float64; got {dtype}")
    return FORMATS[dtype]


def mantissa_index(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The mantissa bits JAX keeps from each draw, as a non-negative integer tensor.

    ``words`` come from :func:`words.random_words` with ``draw_width`` of ``dtype``.
    """
    fmt = FORMATS[dtype]
    return (words >> fmt.shift) & fmt.mask


def one_to_two(index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Floats ``1 + index * 2**-mantissa`` of ``dtype``, built by bit pattern like JAX does."""
    fmt = FORMATS[dtype]
    return (index | fmt.one).to(fmt.int_view).view(dtype)
