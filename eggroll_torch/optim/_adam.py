"""``scale_by_adam``: Adam's moment estimates, in optax's order of operations."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy
import torch

from .. import tree
from ._flat import constant, with_flat
from .base import GradientTransformation
from ..numerics import divide_by_broadcast, one_minus_power, safe_increment, sqrt, weak_scalar


class ScaleByAdamState(NamedTuple):
    """Step counter (int32 scalar tensor) and the first and second moments."""

    count: torch.Tensor
    mu: Any
    nu: Any


def _moment(g, t, decay, square: bool):
    # optax writes (1 - decay) * g**order + decay * t; 1 - decay is evaluated in Python (float64)
    # and only then rounded to the leaf dtype, exactly like the weak-typed JAX scalar.
    power = g * g if square else g
    return weak_scalar(1 - decay, power) * power + weak_scalar(decay, t) * t


def _bias_correction(moment, decay, count, dtype):
    correction = one_minus_power(decay, count, dtype)
    single_leaf = len(tree.leaves(moment)) == 1
    return tree.map(lambda t: _correct(t, correction, dtype, single_leaf), moment)


def _correct(t, correction, dtype, single_leaf: bool):
    divisor = correction.to(device=t.device, dtype=t.dtype)
    # optax jits this over the whole tree. XLA rewrites ``t / broadcast(c)`` into a multiply by
    # ``1 / c`` only when ``c`` has a single consumer: always for leaves that need a cast of
    # the correction (each cast has one use), for the others only in a one-leaf tree.
    if single_leaf or t.dtype != dtype:
        return divide_by_broadcast(t, divisor)
    return t / divisor


def _count_and_corrections(count: torch.Tensor, decays, dtype: torch.dtype, bases: dict,
                           on_host: bool | None = None):
    """``safe_increment(count)`` and ``one_minus_power(decay, that count, dtype)`` per decay.

    On the CPU from the count's value on the host: Python's float power is the same libm ``pow``
    as the scalar ``pow`` torch runs for these one-element tensors, then rounded to ``dtype``
    and subtracted from 1 in ``dtype`` as :func:`one_minus_power` does, so the same bits with
    two small tensors made instead of a dozen tiny ops. Elsewhere (no host read of a device
    tensor) one ``pow`` for all decays: each element runs the same scalar ``pow`` as a lone one
    would. ``bases`` keeps the decays rounded to ``dtype``, as Python floats per dtype and as
    float64 tensors per dtype and device. ``on_host`` overrides the choice (default: on the host
    for a CPU count).
    """
    host = numpy.float64 if dtype == torch.float64 else numpy.float32
    if count.device.type == "cpu" if on_host is None else on_host:
        if dtype not in bases:
            bases[dtype] = [float(host(decay)) for decay in decays]
        value = int(count)
        limit = _COUNT_MAX.get(count.dtype)
        if limit is None:
            limit = _COUNT_MAX[count.dtype] = torch.iinfo(count.dtype).max
        if value < limit:
            value += 1
        one = host(1)
        corrections = [torch.full((), float(one - host(base ** value)), dtype=dtype) for base in bases[dtype]]
        return torch.full((), value, dtype=count.dtype), corrections
    key = (dtype, count.device)
    if key not in bases:
        bases[key] = torch.stack([torch.full((), decay, dtype=dtype, device=count.device)
                                  for decay in decays]).to(torch.float64)
    count_inc = safe_increment(count)
    return count_inc, (1 - torch.pow(bases[key], count_inc.to(torch.float64)).to(dtype)).unbind()


_COUNT_MAX: dict = {}


def _scalar_dtype(params) -> torch.dtype:
    dtypes = [leaf.dtype for leaf in tree.leaves(params)]
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _device(params):
    leaves = tree.leaves(params)
    return leaves[0].device if leaves else None


def scale_by_adam(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: torch.dtype | None = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam's rescaling: ``mu_hat / (sqrt(nu_hat + eps_root) + eps)`` with bias-corrected moments.

    The count is an int32 scalar on the params' device. The bias correction ``1 - b**count`` is
    computed in float32 (float64 when any parameter is float64, as JAX with x64 enabled does).
    """

    def init_fn(params):
        mu = tree.map(lambda p: torch.zeros_like(p, dtype=mu_dtype), params)
        nu = tree.map(torch.zeros_like, params)
        return ScaleByAdamState(count=torch.zeros((), dtype=torch.int32, device=_device(params)), mu=mu, nu=nu)

    def update_fn(updates, state, params=None):
        del params
        scalar_dtype = _scalar_dtype(updates)
        mu = tree.map(lambda g, t: _moment(g, t, b1, square=False), updates, state.mu)
        nu = tree.map(lambda g, t: _moment(g, t, b2, square=True), updates, state.nu)
        count_inc = safe_increment(state.count)
        if nesterov:
            mu_hat = tree.map(
                lambda m, g: weak_scalar(b1, m) * m + weak_scalar(1 - b1, g) * g,
                _bias_correction(mu, b1, safe_increment(count_inc), scalar_dtype),
                _bias_correction(updates, b1, count_inc, scalar_dtype),
            )
        else:
            mu_hat = _bias_correction(mu, b1, count_inc, scalar_dtype)
        nu_hat = _bias_correction(nu, b2, count_inc, scalar_dtype)
        new_updates = tree.map(
            lambda m, v: m / (sqrt(v + weak_scalar(eps_root, v)) + weak_scalar(eps, v)), mu_hat, nu_hat
        )
        if mu_dtype is not None:
            mu = tree.map(lambda t: t.to(mu_dtype), mu)
        nu = tree.map(lambda t, old: t.to(old.dtype), nu, state.nu)
        return new_updates, ScaleByAdamState(count=count_inc, mu=mu, nu=nu)

    bases = {}

    def flat_update_fn(updates, state, params, layout):
        # update_fn on the concatenated leaves (one dtype, so one scalar dtype and one division
        # rule for all; the moments keep the leaves' dtype, as without mu_dtype they do).
        del params
        mu_old, nu_old = layout.flatten(state.mu), layout.flatten(state.nu)
        scalar_dtype = torch.float64 if layout.dtype == torch.float64 else torch.float32
        single_leaf = layout.leaves == 1
        mu = constant(1 - b1, updates) * updates + constant(b1, mu_old) * mu_old
        power = updates * updates
        nu = constant(1 - b2, power) * power + constant(b2, nu_old) * nu_old
        if nesterov:
            count_inc = safe_increment(state.count)
            m = _correct(mu, one_minus_power(b1, safe_increment(count_inc), scalar_dtype), scalar_dtype, single_leaf)
            g = _correct(updates, one_minus_power(b1, count_inc, scalar_dtype), scalar_dtype, single_leaf)
            mu_hat = constant(b1, m) * m + constant(1 - b1, g) * g
            nu_hat = _correct(nu, one_minus_power(b2, count_inc, scalar_dtype), scalar_dtype, single_leaf)
        else:
            count_inc, (mu_correction, nu_correction) = _count_and_corrections(state.count, (b1, b2), scalar_dtype,
                                                                               bases)
            mu_hat = _correct(mu, mu_correction, scalar_dtype, single_leaf)
            nu_hat = _correct(nu, nu_correction, scalar_dtype, single_leaf)
        # nu_hat + 0.0 differs from nu_hat only for -0.0, whose root plus eps is eps all the same.
        skip_root_eps = isinstance(eps_root, (int, float)) and eps_root == 0.0
        root = sqrt(nu_hat if skip_root_eps else nu_hat + constant(eps_root, nu_hat))
        new_updates = mu_hat / (root + constant(eps, nu_hat))
        return new_updates, ScaleByAdamState(count=count_inc, mu=layout.unflatten(mu), nu=layout.unflatten(nu))

    if mu_dtype is None:
        update_fn = with_flat(update_fn, flat_update_fn)
    return GradientTransformation(init_fn, update_fn)
