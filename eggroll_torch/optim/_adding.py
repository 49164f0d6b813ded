"""``add_decayed_weights``: decoupled weight decay, ``g + weight_decay * p``."""
from __future__ import annotations

from .. import tree
from ._flat import NotFlat, constant, with_flat
from ._masking import masked
from .base import EmptyState, GradientTransformation
from ..numerics import weak_scalar


def add_decayed_weights(weight_decay=0.0, mask=None) -> GradientTransformation:
    """Add ``weight_decay * param`` to each update; needs ``params`` in ``update``.

    ``mask`` (a pytree of bools with the params' structure, or a callable returning one) limits
    the decay to the leaves marked True. A constant ``weight_decay`` of 0 leaves updates untouched.
    """
    if callable(weight_decay):
        raise TypeError("weight_decay: schedules are not supported by eggroll_torch.optim; pass a float")

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "params: add_decayed_weights needs the current parameters; call "
                "update(updates, state, params)"
            )
        if weight_decay == 0.0:
            return updates, state
        return tree.map(lambda g, p: g + weak_scalar(weight_decay, p) * p, updates, params), state

    def flat_update_fn(updates, state, params, layout):
        del layout
        if params is None:
            raise NotFlat  # update_fn explains
        if weight_decay == 0.0:
            return updates, state
        return updates + constant(weight_decay, params) * params, state

    if mask is not None:
        return masked(GradientTransformation(init_fn, update_fn), mask)
    return GradientTransformation(init_fn, with_flat(update_fn, flat_update_fn))
