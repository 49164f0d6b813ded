"""Which float32 mantissas the CUDA kernels compute, and the table of the others.

``jax.random.normal``'s float32 is a function of a 23-bit mantissa ``m``. The kernels of
:mod:`triton_normal` compute it with straight-line arithmetic over one contiguous range
``[lo, hi]`` of mantissas and read the two ends, where ``|u|`` is large, from a table:

* ``"gpu"`` (XLA:GPU): ``erf_inv``'s ``w >= 5`` tail, 28,309 mantissas (110 KiB). Its square root
  and per-branch coefficients would otherwise run for every value.
* ``"cpu"`` (XLA:CPU): everything outside log1p's rational branch (``|u*u| >= 0.4142``, which
  contains the tail): 2,989,748 mantissas (11.4 MiB). XLA:CPU's log1p has a second,
  ``log(1 + x)`` branch, and a SIMT kernel computing both for every value is slower than
  reading a third of them (measured on an H100, see :mod:`triton_normal`).

The table holds the ends in the order the kernels index it: mantissa ``m`` is entry
``(m - (hi + 1)) mod 2**23`` when that is below ``2**23 - 1 - hi + lo`` (the high end, then the
low end). This module needs no triton, so the split is tested on any host.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from . import xla_cpu_f32
from .exact_numpy import F32, mul32
from .gpu_variant import log1p_libdevice
from .normal_tables import normal_inputs, normal_values

N_MANTISSAS = 1 << 23


def computed_mask(variant: str) -> np.ndarray:
    """``(2**23,)`` bool: whether the kernel of ``variant`` computes each mantissa, per the
    emulations: ``w = -log1p(-u*u) < 5`` (``"gpu"``) or log1p's rational branch (``"cpu"``,
    where ``w < 0.54``)."""
    if variant not in ("cpu", "gpu"):
        raise ValueError(f"variant must be 'cpu' or 'gpu'; got {variant!r}")
    u = normal_inputs(torch.arange(N_MANTISSAS, dtype=torch.int32), torch.float32).numpy()
    square = mul32(u, -u)
    if variant == "cpu":
        return xla_cpu_f32.log1p_rational_branch(square)
    return -log1p_libdevice(square) < F32(5.0)


@functools.cache
def computed_range(variant: str, device: torch.device) -> tuple[int, int, torch.Tensor]:
    """``(lo, hi, table)`` for ``variant``: the kernel computes mantissas ``lo..hi`` and reads the
    others from ``table`` (float32 on ``device``, ordered as the module docstring says).

    A ``"gpu"`` table built for a CUDA device takes its tail roots from that device's
    ``sqrt.approx.f32`` (see :mod:`gpu_variant`). Cached per (variant, device).
    """
    computed = np.flatnonzero(computed_mask(variant))
    lo, hi = int(computed[0]), int(computed[-1])
    if computed.size != hi - lo + 1:
        raise AssertionError(f"the computed float32 mantissas of variant {variant!r} are not one contiguous range")
    index = torch.from_numpy(np.concatenate([np.arange(hi + 1, N_MANTISSAS), np.arange(lo)]).astype(np.int32))
    sqrt_device = device if (variant == "gpu" and device.type == "cuda") else None
    return lo, hi, normal_values(index, torch.float32, variant, sqrt_device=sqrt_device).to(device)
