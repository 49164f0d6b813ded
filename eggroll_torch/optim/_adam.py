"""``scale_by_adam``: Adam's moment estimates, in optax's order of operations."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import tree
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

    def correct(t):
        divisor = correction.to(device=t.device, dtype=t.dtype)
        # optax jits this over the whole tree. XLA rewrites ``t / broadcast(c)`` into a multiply by
        # ``1 / c`` only when ``c`` has a single consumer: always for leaves that need a cast of
        # the correction (each cast has one use), for the others only in a one-leaf tree.
        if single_leaf or t.dtype != dtype:
            return divide_by_broadcast(t, divisor)
        return t / divisor

    return tree.map(correct, moment)


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

    return GradientTransformation(init_fn, update_fn)
