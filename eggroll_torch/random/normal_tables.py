"""Lookup tables of every value ``jax.random.normal`` can return, per float dtype.

A float32 normal is a function of the 23 mantissa bits of its draw (float16: 10, bfloat16: 7), so
indexing a table with those bits is exact by construction. Tables are computed at first use by
the operation-for-operation emulation in :mod:`xla_cpu_f32` (variant ``"cpu"``; for float32 its
C twin in :mod:`native` when a compiler is present: ~10 ms instead of ~3 s) or :mod:`gpu_variant`
(variant ``"gpu"``, XLA:GPU's values), never loaded from JAX, and cached per (dtype, variant,
device). The float32 table has 2**23 entries (32 MiB). The kernels of :mod:`native` and
:mod:`triton_normal` compute float32 values instead of reading this table.
"""
from __future__ import annotations

import numpy as np
import torch

from . import native
from .float_bits import FORMATS, one_to_two
from .gpu_variant import cuda_sqrt_approx, erf_inv_gpu
from .xla_cpu_f32 import SQRT2_F32, erf_inv_f32

_CACHE: dict[tuple[torch.dtype, str, str], torch.Tensor] = {}
_CHUNK = 1 << 20
VARIANTS = ("cpu", "gpu")


def normal_inputs(index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The uniform ``u`` in ``(-1, 1)`` that ``normal`` feeds to ``erf_inv`` for mantissa ``index``.

    ``u = max(lo, (f - 1) * 2 + lo)`` in ``dtype`` arithmetic with ``lo = nextafter(-1, 0)``; the
    doubling is exact, so only the final addition rounds.
    """
    lo = -(1.0 - 2.0 ** -(FORMATS[dtype].mantissa + 1))
    unit = one_to_two(index, dtype).double() - 1.0
    return torch.clamp_min(unit * 2.0 + lo, lo).to(dtype)


def _erf_inv(variant: str, sqrt_device: torch.device | None):
    if variant == "cpu":
        return erf_inv_f32
    if sqrt_device is None:
        return erf_inv_gpu
    root = cuda_sqrt_approx(sqrt_device)
    return lambda u: erf_inv_gpu(u, root)


def _normal_from_inputs(u: torch.Tensor, variant: str, sqrt_device=None) -> torch.Tensor:
    """``sqrt(2) * erf_inv(u)`` in u's dtype: erf_inv runs in float32, the product in ``dtype``."""
    e = torch.from_numpy(_erf_inv(variant, sqrt_device)(u.float().numpy()))
    if u.dtype == torch.float32:
        return (e.double() * float(SQRT2_F32)).float()
    sqrt2 = torch.tensor(np.sqrt(2.0), dtype=torch.float64).to(u.dtype).double()
    return (e.to(u.dtype).double() * sqrt2).to(u.dtype)


def normal_values(index: torch.Tensor, dtype: torch.dtype, variant: str = "cpu", sqrt_device=None) -> torch.Tensor:
    """Normals of ``dtype`` for mantissa indices (any shape), computed without a table (CPU).

    ``sqrt_device``: a CUDA device whose ``sqrt.approx.f32`` computes the ``"gpu"`` variant's
    tail roots exactly (see :mod:`gpu_variant`); ``None`` rounds them correctly instead.
    """
    check_variant(variant)
    flat = index.reshape(-1).cpu()
    out = torch.empty(flat.shape, dtype=dtype)
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start:start + _CHUNK]
        out[start:start + part.numel()] = _normal_from_inputs(normal_inputs(part, dtype), variant, sqrt_device)
    return out.reshape(index.shape)


def check_variant(variant: str) -> None:
    """ValueError unless ``variant`` names a known backend of JAX (``"cpu"`` or ``"gpu"``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")


def table_is_cached(dtype: torch.dtype, variant: str) -> bool:
    """Whether the table of (dtype, variant) has been built in this process."""
    return (dtype, variant, "cpu") in _CACHE


def normal_table(dtype: torch.dtype, device, variant: str = "cpu") -> torch.Tensor:
    """The cached table mapping mantissa bits to normals of ``dtype`` (float32, float16, bfloat16).

    ``variant="gpu"`` gives XLA:GPU's float32 values (see :mod:`gpu_variant` for what was verified
    on an H100); a table for a CUDA device takes the tail's square roots from that device's own
    approximate instruction, which makes it exact. float16/bfloat16 GPU values equal the CPU ones
    (measured on an H100 for every value).
    """
    check_variant(variant)
    device = torch.device(device)
    key = (dtype, variant, str(device))
    if key not in _CACHE and variant == "gpu" and device.type == "cuda":
        every_index = torch.arange(1 << FORMATS[dtype].mantissa, dtype=torch.int32)
        _CACHE[key] = normal_values(every_index, dtype, variant, sqrt_device=device).to(device)
    if key not in _CACHE:
        host_key = (dtype, variant, "cpu")
        if host_key not in _CACHE and dtype == torch.float32 and variant == "cpu" and native.available():
            _CACHE[host_key] = native.normal_f32_mantissas(0, 1 << 23)
        if host_key not in _CACHE:
            every_index = torch.arange(1 << FORMATS[dtype].mantissa, dtype=torch.int32)
            _CACHE[host_key] = normal_values(every_index, dtype, variant)
        _CACHE[key] = _CACHE[host_key].to(device)
    return _CACHE[key]
