"""``scale`` and ``scale_by_learning_rate``: multiply every update by a constant."""
from __future__ import annotations

from .. import tree
from ._flat import constant, with_flat
from .base import GradientTransformation, init_empty_state
from ..numerics import weak_scalar


def scale(step_size) -> GradientTransformation:
    """``updates * step_size``, the Python number rounded to each leaf's dtype first (as JAX does)."""

    def update_fn(updates, state, params=None):
        del params
        return tree.map(lambda g: weak_scalar(step_size, g) * g, updates), state

    def flat_update_fn(updates, state, params, layout):
        del params, layout
        return constant(step_size, updates) * updates, state

    return GradientTransformation(init_empty_state, with_flat(update_fn, flat_update_fn))


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """``scale(-learning_rate)`` (or ``+`` with ``flip_sign=False``): the descent step.

    Only constant learning rates are supported; optax schedules (callables) are not.
    """
    if callable(learning_rate):
        raise TypeError(
            "learning_rate: schedules (callables) are not supported by eggroll_torch.optim; "
            "pass a constant float"
        )
    sign = -1 if flip_sign else 1
    return scale(sign * learning_rate)
