"""Lookup tables of every value ``jax.random.normal`` can return, per float dtype.

A float32 normal is a function of the 23 mantissa bits of its draw (float16: 10, bfloat16: 7), so
indexing a table with those bits is exact by construction. Tables are computed at first use by
the operation-for-operation emulation in :mod:`xla_cpu_f32` (never loaded from JAX) and cached per
(dtype, variant, device). The float32 table has 2**23 entries (32 MiB) and takes a few seconds to
build on one CPU core.
"""
from __future__ import annotations

import numpy as np
import torch

from .float_bits import FORMATS, one_to_two
from .xla_cpu_f32 import SQRT2_F32, erf_inv_f32

_CACHE: dict[tuple[torch.dtype, str, str], torch.Tensor] = {}
_CHUNK = 1 << 20
VARIANTS = ("cpu",)


def _lowest_above_minus_one(dtype: torch.dtype) -> torch.Tensor:
    """``nextafter(-1, 0)`` in ``dtype``: the lower end JAX gives ``uniform`` for normals."""
    mantissa = FORMATS[dtype].mantissa
    return torch.tensor(-(1.0 - 2.0 ** -(mantissa + 1)), dtype=dtype)


def normal_inputs(index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The uniform ``u`` in ``(-1, 1)`` that ``normal`` feeds to ``erf_inv`` for mantissa ``index``.

    ``u = max(lo, (f - 1) * 2 + lo)`` in ``dtype`` arithmetic, ``lo = nextafter(-1, 0)``; the
    doubling is exact, so only the final addition rounds.
    """
    lo = _lowest_above_minus_one(dtype).double()
    unit = one_to_two(index, dtype).double() - 1.0
    return torch.maximum((unit * 2.0 + lo).to(dtype), lo.to(dtype))


def _normal_from_inputs(u: torch.Tensor) -> torch.Tensor:
    """``sqrt(2) * erf_inv(u)`` in u's dtype: erf_inv runs in float32, the product in ``dtype``."""
    e = erf_inv_f32(u.float())
    if u.dtype == torch.float32:
        return (e.double() * SQRT2_F32).float()
    sqrt2 = torch.tensor(np.sqrt(2.0), dtype=torch.float64).to(u.dtype).double()
    return (e.to(u.dtype).double() * sqrt2).to(u.dtype)


def _build(dtype: torch.dtype) -> torch.Tensor:
    size = 1 << FORMATS[dtype].mantissa
    table = torch.empty(size, dtype=dtype)
    for start in range(0, size, _CHUNK):
        index = torch.arange(start, min(start + _CHUNK, size), dtype=torch.int32)
        table[start:start + index.numel()] = _normal_from_inputs(normal_inputs(index, dtype))
    return table


def normal_table(dtype: torch.dtype, device, variant: str = "cpu") -> torch.Tensor:
    """The cached table mapping mantissa bits to normals of ``dtype`` (float32, float16, bfloat16)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    device = torch.device(device)
    key = (dtype, variant, str(device))
    if key not in _CACHE:
        host_key = (dtype, variant, "cpu")
        if host_key not in _CACHE:
            _CACHE[host_key] = _build(dtype)
        _CACHE[key] = _CACHE[host_key].to(device)
    return _CACHE[key]
