"""``jax.random.normal`` for a batch of keys, bit for bit as XLA:CPU computes it."""
from __future__ import annotations

import math

import torch

from . import config, native
from .float_bits import check_float_dtype, mantissa_index
from .keys import check_keys
from .normal_f64 import normal_f64_from_words
from .normal_tables import check_variant, normal_table, normal_values, table_is_cached
from .sampling import draw_lookup, draw_mapped
from .triton_support import triton_usable
from .words import check_shape

# Without the C kernel, until this many float32 values have been drawn on the CPU they are
# computed directly (~0.5 us each) rather than by building the 2**23-entry table (~3 s).
_DIRECT_BUDGET = {"left": 1 << 21}


def _compute_directly(keys: torch.Tensor, shape: tuple[int, ...], variant: str) -> bool:
    if keys.device.type != "cpu" or table_is_cached(torch.float32, variant):
        return False
    draws = keys[..., 0].numel() * math.prod(shape)
    if draws > _DIRECT_BUDGET["left"]:
        return False
    _DIRECT_BUDGET["left"] -= draws
    return True


def _kernel_normal(keys: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, variant: str,
                   partitionable: bool | None) -> torch.Tensor | None:
    """The draw through the C (CPU) or Triton (CUDA) kernel, or None where they do not apply."""
    choice = config.backend()
    if choice not in ("auto", "kernel"):
        return None
    n = math.prod(shape)
    flat = keys.reshape(-1, 2)
    device = keys.device
    on_cuda = device.type == "cuda" and triton_usable(device)
    on_cpu = device.type == "cpu" and native.available()
    if not (on_cuda or on_cpu) or not config.threefry_partitionable(partitionable) or n >= 2**31:
        if choice == "kernel":
            raise RuntimeError(
                "backend 'kernel' draws normals with the partitionable layout (the default), fewer than 2**31 "
                f"values per key, on the CPU with a C compiler or on CUDA with triton; this call (device {device}, "
                f"{n} values per key) cannot use it: call set_backend('auto')"
            )
        return None
    out = torch.empty((flat.shape[0], n), dtype=dtype, device=device)
    if out.numel() == 0:
        return out.reshape(tuple(keys.shape[:-1]) + shape)
    if on_cuda:
        from .triton_normal import normal_rows

        normal_rows(flat, out, variant=variant)
    else:
        computed = dtype == torch.float32 and variant == "cpu"
        native.normal_rows(flat, out, None if computed else normal_table(dtype, device, variant))
    return out.reshape(tuple(keys.shape[:-1]) + shape)


def normal(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, *,
           partitionable: bool | None = None, variant: str = "cpu") -> torch.Tensor:
    """``jax.random.normal(key, shape, dtype)`` for every key of the batch.

    How the values are computed (C or Triton kernels, torch ops, ``torch.compile``) follows
    :func:`set_backend` and never changes them.

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        shape (int | tuple[int, ...]): sample shape per key, non-negative ints. Default ``()``.
        dtype (torch.dtype): ``torch.float32`` (default), ``float16``, ``bfloat16`` or
            ``float64``.
        partitionable (bool | None): the ``jax_threefry_partitionable`` setting to imitate;
            ``None`` (default) uses :func:`set_threefry_partitionable`'s.
        variant (str): whose values to reproduce: ``"cpu"`` (default) gives XLA:CPU's (jax
            0.10.2 on x86-64); ``"gpu"`` gives XLA:GPU's float32 values (jax 0.11.2 on an
            H100, see :mod:`gpu_variant`; float64 has none).

    Returns:
        torch.Tensor: standard normal samples of shape ``(*batch, *shape)`` and ``dtype`` on the
        keys' device; entry ``[i, ...]`` is ``jax.random.normal(keys[i], shape, dtype)`` as the
        ``variant``'s XLA backend computes it.

    Raises:
        TypeError: ``keys`` is not a key batch; ``partitionable`` is not a bool or ``None``.
        ValueError: ``shape`` is not non-negative ints; an unsupported ``dtype`` or
            ``variant``; float64 with ``variant="gpu"``.
        RuntimeError: under ``set_backend("kernel")``, a draw its kernels cannot run
            (non-partitionable layout, 2**31 or more values per key, or no C compiler / Triton).
    """
    check_keys(keys)
    shape = check_shape(shape)
    fmt = check_float_dtype(dtype)
    check_variant(variant)
    if dtype == torch.float64:
        if variant != "cpu":
            raise ValueError(f"float64 normals exist only for variant='cpu'; got variant={variant!r}")
        return draw_mapped(keys, shape, fmt.draw_width, partitionable, normal_f64_from_words, dtype)
    drawn = _kernel_normal(keys, shape, dtype, variant, partitionable)
    if drawn is not None:
        return drawn
    if dtype == torch.float32 and _compute_directly(keys, shape, variant):
        words = draw_mapped(keys, shape, fmt.draw_width, partitionable, lambda w: w, torch.int32)
        return normal_values(mantissa_index(words, dtype), dtype, variant)
    table = normal_table(dtype, keys.device, variant)
    return draw_lookup(keys, shape, fmt.draw_width, partitionable, table, fmt.shift, fmt.mask)
