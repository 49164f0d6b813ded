"""``jax.random.uniform`` for a batch of keys, bit for bit as XLA:CPU computes it."""
from __future__ import annotations

import numbers

import torch

from . import config
from .exact_arith import fma_f32, fma_f64
from .float_bits import check_float_dtype, mantissa_index, one_to_two
from .keys import check_keys
from .sampling import draw_mapped
from .words import check_shape


def bound(value, dtype: torch.dtype, device, name: str) -> torch.Tensor:
    """A ``minval``/``maxval`` as a tensor of ``dtype``, rounded the way JAX converts it.

    Python floats enter JAX's jitted sampler as float32 with x64 off (float64 with it on) and are
    then converted to ``dtype``; both roundings are reproduced.
    """
    if isinstance(value, torch.Tensor):
        if not value.dtype.is_floating_point and value.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be a real number or a float tensor; got dtype {value.dtype}")
        return value.to(device=device, dtype=torch.float64).to(dtype)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number or a float tensor; got {type(value).__name__}")
    carrier = torch.float64 if (config.enable_x64() or dtype == torch.float64) else torch.float32
    return torch.tensor(float(value), dtype=carrier, device=device).to(dtype)


def _scale(floats: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``max(lo, floats * (hi - lo) + lo)`` in the dtype's own arithmetic.

    float32/float64 multiply-adds are contracted into FMAs by XLA:CPU; float16/bfloat16 work is
    done in float32 and rounded back after every operation.
    """
    dtype = floats.dtype
    if dtype == torch.float32:
        span = (hi.double() - lo.double()).float()
        out = fma_f32(floats, span, lo)
    elif dtype == torch.float64:
        out = fma_f64(floats, hi - lo, lo)
    else:
        span = (hi.float() - lo.float()).to(dtype)
        out = (floats.float() * span.float()).to(dtype)
        out = (out.float() + lo.float()).to(dtype)
    return torch.maximum(lo, out)


def uniform_from_words(words: torch.Tensor, dtype: torch.dtype, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Uniform floats of ``dtype`` in ``[lo, hi)`` from :func:`words.random_words` output."""
    floats = one_to_two(mantissa_index(words, dtype), dtype)
    # f - 1 is exact for every f in [1, 2).
    return _scale((floats.double() - 1.0).to(dtype), lo, hi)


def uniform(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, minval=0.0, maxval=1.0, *,
            partitionable: bool | None = None) -> torch.Tensor:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)`` for every key of the batch.

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        shape (int | tuple[int, ...]): sample shape per key, non-negative ints. Default ``()``.
        dtype (torch.dtype): ``torch.float32`` (default), ``float16``, ``bfloat16`` or
            ``float64``.
        minval (float | torch.Tensor): inclusive lower bound, a real number or a float (or
            int32/int64) tensor broadcastable to ``(*batch, *shape)``. Python numbers are
            rounded as JAX rounds them (through float32 unless x64 or float64). Default 0.0.
        maxval (float | torch.Tensor): exclusive upper bound, like ``minval``. Default 1.0.
        partitionable (bool | None): the ``jax_threefry_partitionable`` setting to imitate;
            ``None`` (default) uses :func:`set_threefry_partitionable`'s.

    Returns:
        torch.Tensor: samples in ``[minval, maxval)`` of shape ``(*batch, *shape)`` and
        ``dtype`` on the keys' device; entry ``[i, ...]`` is
        ``jax.random.uniform(keys[i], shape, dtype, minval, maxval)``.

    Raises:
        TypeError: ``keys`` is not a key batch; ``minval``/``maxval`` is not a real number or a
            float/int tensor; ``partitionable`` is not a bool or ``None``.
        ValueError: ``shape`` is not non-negative ints; an unsupported ``dtype``; bounds that do
            not broadcast to ``(*batch, *shape)`` without enlarging it.
    """
    check_keys(keys)
    shape = check_shape(shape)
    fmt = check_float_dtype(dtype)
    lo = bound(minval, dtype, keys.device, "minval")
    hi = bound(maxval, dtype, keys.device, "maxval")
    out_shape = tuple(keys.shape[:-1]) + shape
    try:
        fits = torch.broadcast_shapes(lo.shape, hi.shape, out_shape) == out_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"minval/maxval of shapes {tuple(lo.shape)}, {tuple(hi.shape)} must broadcast to "
                         f"the output shape {out_shape} (batch + shape) without enlarging it")
    if lo.ndim == 0 and hi.ndim == 0:
        return draw_mapped(keys, shape, fmt.draw_width, partitionable,
                           lambda words: uniform_from_words(words, dtype, lo, hi), dtype)
    words = draw_mapped(keys, shape, fmt.draw_width, partitionable, lambda w: w,
                        torch.int64 if fmt.draw_width == 64 else torch.int32)
    return uniform_from_words(words, dtype, lo, hi).expand(out_shape)
