"""The gradient-transformation protocol of optax, for pytrees of torch tensors.

A transformation is a pair of pure functions: ``init(params) -> state`` and
``update(updates, state, params=None) -> (updates, state)``. Neither modifies its inputs, so a
caller can keep the old state and roll back by simply not using the new one.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ._flat import with_flat


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation (a pytree with no leaves)."""


def init_empty_state(params) -> EmptyState:
    """``init`` of every stateless transformation."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """Pass updates through unchanged."""

    def update_fn(updates, state, params=None):
        del params
        return updates, state

    def flat_update_fn(updates, state, params, layout):
        del params, layout
        return updates, state

    return GradientTransformation(init_empty_state, with_flat(update_fn, flat_update_fn))
