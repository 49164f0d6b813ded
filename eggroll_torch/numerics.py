"""Scalar arithmetic with JAX's rounding, shared by the optimizers, the noisers and the models.

JAX converts a Python scalar to the dtype of the array it meets *before* the operation
("weak typing"); torch instead keeps the scalar in the kernel's wider compute type for bfloat16
and float16, and divides CUDA tensors by a CPU scalar through its reciprocal. Building the scalar
as a tensor of the array's dtype on the array's device gives JAX's bits in both cases.

Scalars are built with ``torch.full`` (a fill kernel on the device) rather than ``torch.tensor``
(a host-to-device copy), so that all of this can be recorded in a CUDA graph.
"""
from __future__ import annotations

import numpy
import torch

def weak_scalar(value, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor of ``like``'s dtype and device, rounded once as JAX rounds it.

    ``value`` may be a Python number or a tensor (a tensor is cast, keeping its own rounding).
    """
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.full((), value, dtype=like.dtype, device=like.device)


def default_float_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype JAX computes Python-scalar expressions in next to an array of ``dtype``.

    float32 (JAX's default) for every dtype but float64, where JAX must run with x64 enabled and
    then computes scalars in float64.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def safe_increment(count: torch.Tensor) -> torch.Tensor:
    """``count + 1``, staying at the int32 maximum instead of wrapping (optax's counter)."""
    return torch.where(count < torch.iinfo(count.dtype).max, count + 1, count)


def one_minus_power(decay, count: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``1 - decay ** count`` computed in ``dtype``, as optax's bias correction computes it.

    XLA raises the ``dtype``-rounded ``decay`` to ``count`` with a pow of that precision. For
    float32 the float64 power of the same float32 base, rounded to float32, gives XLA's bits for
    optax's default betas up to count 872 (0.999) and at most one float32 ulp away beyond that.
    """
    base = torch.full((), decay, dtype=dtype, device=count.device).to(torch.float64)
    power = torch.pow(base, count.to(torch.float64)).to(dtype)
    return torch.ones((), dtype=dtype, device=count.device) - power


def divide_by_broadcast(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` for a denominator broadcast along some axes, as XLA on CPU does it.

    XLA rewrites a division by a broadcast value (a scalar, or a ``keepdims`` statistic) into a
    multiplication by the reciprocal, rounding the reciprocal in the operation's dtype (float32
    for bfloat16, which XLA widens first). A true division differs in the last bit for about a
    fifth of float32 values, so every such division of the reference goes through here.
    ``denominator`` must already have the numerator's dtype and broadcast against it.
    """
    if numerator.dtype == torch.bfloat16:
        reciprocal = 1.0 / denominator.to(torch.float32)
        return (numerator.to(torch.float32) * reciprocal).to(torch.bfloat16)
    reciprocal = torch.ones((), dtype=denominator.dtype, device=denominator.device) / denominator
    return numerator * reciprocal


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, as XLA computes it (float16/bfloat16 through float32).

    torch's vectorised CPU ``sqrt`` is off by one ulp for a few percent of float32 and float64
    inputs. On CPU a float64 root rounded once is exact for the narrower dtypes, and numpy's
    float64 root is exact for float64; CUDA's ``sqrt`` is already correctly rounded.
    """
    if x.device.type != "cpu":
        return torch.sqrt(x)
    if x.dtype == torch.float64:
        return torch.from_numpy(numpy.asarray(numpy.sqrt(x.detach().numpy())))
    if x.dtype in (torch.bfloat16, torch.float16):
        return torch.sqrt(x.to(torch.float64)).to(torch.float32).to(x.dtype)
    return torch.sqrt(x.to(torch.float64)).to(x.dtype)


def _computation_dtype(dtype: torch.dtype) -> torch.dtype:
    # jnp reductions accumulate bfloat16/float16 in float32 and round the result back once.
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def mean(x: torch.Tensor, dim, keepdim: bool = False) -> torch.Tensor:
    """``jnp.mean``: the sum (in float32 for half types) times the reciprocal of the count.

    XLA replaces the division by the constant count with a multiplication by its rounded
    reciprocal; this does the same, then casts back to ``x.dtype``.
    """
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    count = 1
    for d in dims:
        count *= x.shape[d]
    compute = _computation_dtype(x.dtype)
    total = x.to(compute).sum(dim=dims, keepdim=keepdim)
    return (total * _reciprocal(count, compute)).to(x.dtype)


def _reciprocal(count: int, dtype: torch.dtype) -> float:
    """``1 / count`` rounded to ``dtype`` (float32 or float64, ``count`` first rounded to it),
    computed on the host: IEEE division gives the device's bits, and a Python float that is
    exactly a ``dtype`` value multiplies a tensor of that dtype as the 0-d tensor would, without
    two fills and a division on the device at every call."""
    if dtype == torch.float64:
        return 1.0 / float(count)
    return float(numpy.float32(1.0) / numpy.float32(count))


def var(x: torch.Tensor, dim, keepdim: bool = False) -> torch.Tensor:
    """``jnp.var`` (population variance, ddof 0) with ``jnp``'s order of operations."""
    compute = _computation_dtype(x.dtype)
    wide = x.to(compute)
    centered = wide - mean(wide, dim, keepdim=True)
    return mean(centered * centered, dim, keepdim=keepdim).to(x.dtype)


def std(x: torch.Tensor, dim, keepdim: bool = False) -> torch.Tensor:
    """``jnp.std``: the correctly rounded square root of :func:`var`."""
    compute = _computation_dtype(x.dtype)
    return sqrt(var(x.to(compute), dim, keepdim=keepdim)).to(x.dtype)
