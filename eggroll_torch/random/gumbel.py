"""``jax.random.gumbel`` and ``jax.random.categorical`` for a batch of keys, bit for bit on XLA:CPU.

JAX's default (``mode="low"``) Gumbel draw is ``-log(-log(u))`` with
``u = uniform(key, shape, dtype, minval=tiny, maxval=1)``. The uniform is reproduced by
:func:`uniform`; the two logarithms are XLA:CPU's own float32 polynomial (the one inside its
``log1p``, see :mod:`xla_cpu_f32`), evaluated here in torch with the same roundings, because
``torch.log`` differs from it in the last bit for about a quarter of the draws. bfloat16 runs each
logarithm in float32 and rounds it back, as XLA does. ``categorical`` is the Gumbel-max trick:
``argmax(logits + gumbel)`` along the category axis.
"""
from __future__ import annotations

import torch

from . import config
from .exact_arith import fma_f32
from .keys import check_keys
from .float_bits import FORMATS
from .uniform import bound, uniform, uniform_from_words
from .words import check_shape
from .xla_cpu_f32 import _FLT_MIN, _LN2_HEAD, _LN2_TAIL, _LOG_A, _LOG_B, _LOG_C, _SQRT_HALF

# float32 and bfloat16 share the float32 exponent range, hence the same smallest normal.
_TINY = float(_FLT_MIN)
_SUPPORTED = (torch.float32, torch.bfloat16)


def xla_log_f32(y: torch.Tensor) -> torch.Tensor:
    """``log(y)`` of a float32 tensor as XLA:CPU computes it, for finite ``y > 0``.

    Same steps as :func:`xla_cpu_f32._log_f32` (exponent split, degree-9 polynomial on the
    mantissa, ln2 in two parts): float32 ``+``/``*`` round once in torch as on the CPU, and
    every contracted multiply-add goes through :func:`exact_arith.fma_f32`. Inputs below the
    smallest normal are clamped to it, as the kernel does.
    """
    y = torch.clamp(y, min=_TINY)
    bits = y.view(torch.int32)
    exponent = ((bits >> 23) - 127).to(torch.float32) + 1.0
    # keep sign and mantissa, set the exponent of [0.5, 1)
    m = ((bits & -2139095041) | 0x3F000000).view(torch.float32)
    below = m < float(_SQRT_HALF)
    xr = (m - 1.0) + torch.where(below, m, torch.zeros_like(m))
    e = torch.where(below, exponent - 1.0, exponent)

    def horner(c):
        return fma_f32(xr, fma_f32(xr, float(c[0]), float(c[1])), float(c[2]))

    z = xr * xr
    z3 = z * xr
    r = fma_f32(z3, fma_f32(z3, horner(_LOG_A), horner(_LOG_B)), horner(_LOG_C))
    s = fma_f32(z3, r, e * float(_LN2_TAIL))
    h = fma_f32(z, -0.5, xr)
    return fma_f32(e, float(_LN2_HEAD), h + s)


def _log_in(x: torch.Tensor) -> torch.Tensor:
    """XLA's log in ``x``'s dtype: float32 directly, bfloat16 through float32 and back."""
    return xla_log_f32(x.to(torch.float32)).to(x.dtype)


def gumbel_of_mantissas(index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What :func:`gumbel` returns in ``dtype`` for a draw whose kept mantissa bits (the bits
    ``uniform`` keeps of its word) are ``index`` (an integer tensor of any shape): the value is a
    function of those bits alone, computed here by :func:`gumbel`'s own steps, so a table of it
    over every mantissa maps draws to Gumbel values exactly."""
    _check_dtype(dtype)
    fmt = FORMATS[dtype]
    # Words whose kept bits are each index; two's-complement wrap-around keeps them for float32.
    words = (index.to(torch.int64) << fmt.shift).to(torch.int32)
    u = uniform_from_words(words, dtype, bound(_TINY, dtype, index.device, "minval"),
                           bound(1.0, dtype, index.device, "maxval"))
    return -_log_in(-_log_in(u))


def _check_dtype(dtype) -> None:
    if dtype not in _SUPPORTED:
        raise ValueError(f"gumbel/categorical reproduce jax.random for float32 and bfloat16 only; got dtype {dtype}")


def gumbel(keys: torch.Tensor, shape=(), dtype: torch.dtype = torch.float32, *,
           partitionable: bool | None = None) -> torch.Tensor:
    """``jax.random.gumbel(key, shape, dtype)`` (default ``mode="low"``) for every key of the batch.

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        shape (int | tuple[int, ...]): sample shape per key, non-negative ints. Default ``()``.
        dtype (torch.dtype): ``torch.float32`` (default) or ``torch.bfloat16``.
        partitionable (bool | None): the ``jax_threefry_partitionable`` setting to imitate;
            ``None`` (default) uses :func:`set_threefry_partitionable`'s.

    Returns:
        torch.Tensor: standard Gumbel samples ``-log(-log(u))`` of shape ``(*batch, *shape)`` and
        ``dtype`` on the keys' device; entry ``[i, ...]`` is ``jax.random.gumbel(keys[i], shape,
        dtype)`` as XLA:CPU computes it (jax 0.10.2, x86-64).

    Raises:
        TypeError: ``keys`` is not a key batch.
        ValueError: ``shape`` is not non-negative ints; a dtype other than float32/bfloat16
            (float16's XLA logarithm is not reproduced).
    """
    check_keys(keys)
    shape = check_shape(shape)
    _check_dtype(dtype)
    u = uniform(keys, shape, dtype, minval=_TINY, maxval=1.0, partitionable=partitionable)
    return -_log_in(-_log_in(u))


def categorical(keys: torch.Tensor, logits: torch.Tensor, axis: int = -1, shape=None, *,
                partitionable: bool | None = None) -> torch.Tensor:
    """``jax.random.categorical(key, logits, axis, shape)`` (with replacement) for every key.

    The Gumbel-max trick as JAX does it: Gumbel noise of shape ``(*prefix, *logits' shape)``
    (``prefix`` = the leading axes ``shape`` adds to the logits' batch shape) in the logits'
    dtype, added to the logits, and the first index of the maximum along ``axis``. The same
    ``logits`` serve every key.

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        logits (torch.Tensor): unnormalised log-probabilities, float32 or bfloat16; categories
            along ``axis``.
        axis (int): the category axis of ``logits``. Default ``-1``.
        shape (tuple[int, ...] | None): result shape per key; must end with the logits' batch
            shape (``logits.shape`` without ``axis``) up to broadcasting. ``None`` (default): that
            batch shape.
        partitionable (bool | None): as for :func:`gumbel`.

    Returns:
        torch.Tensor: category indices of shape ``(*batch, *shape)``, ``torch.int32`` (``int64``
        under :func:`set_enable_x64`, as JAX's argmax); entry ``[i, ...]`` is
        ``jax.random.categorical(keys[i], logits, axis, shape)``.

    Raises:
        TypeError: ``keys`` is not a key batch; ``logits`` is not a tensor.
        ValueError: an unsupported logits dtype; ``axis`` out of range; ``shape`` not
            broadcast-compatible with the logits' batch shape.
    """
    check_keys(keys)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch tensor; got {type(logits).__name__}")
    _check_dtype(logits.dtype)
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"axis {axis} is out of range for logits of shape {tuple(logits.shape)}")
    axis %= logits.ndim
    batch_shape = tuple(logits.shape[:axis] + logits.shape[axis + 1:])
    shape = batch_shape if shape is None else check_shape(shape)
    try:
        compatible = torch.broadcast_shapes(shape, batch_shape) == shape
    except RuntimeError:
        compatible = False
    if not compatible or len(shape) < len(batch_shape):
        raise ValueError(f"shape {shape} is not broadcast-compatible with the logits' batch shape {batch_shape}")
    prefix = shape[:len(shape) - len(batch_shape)]
    per_draw = list(shape[len(prefix):])
    per_draw.insert(axis, logits.shape[axis])
    noise = gumbel(keys, (*prefix, *per_draw), logits.dtype, partitionable=partitionable)
    # Counted from the end, the category axis is the same in the noise and in the logits, which
    # broadcast over the key batch and the prefix.
    draws = torch.argmax(noise + logits.to(noise.device), dim=axis - logits.ndim)
    return draws.to(torch.int64 if config.enable_x64() else torch.int32)
