"""``masked``: apply a transformation to a subset of the leaves only."""
from __future__ import annotations

from typing import Any, NamedTuple

from .. import tree
from .base import GradientTransformation


class MaskedState(NamedTuple):
    """State of the inner transformation, initialised on the masked params."""

    inner_state: Any


class MaskedNode(NamedTuple):
    """Stand-in for a masked-out leaf: an empty container, so tree maps skip it."""


def _mask_tree(tree_, mask_tree):
    return tree.map(lambda m, x: x if m else MaskedNode(), mask_tree, tree_)


def masked(inner: GradientTransformation, mask) -> GradientTransformation:
    """Run ``inner`` on the leaves where ``mask`` is True and pass the others through.

    ``mask``: a pytree of bools shaped like the params, or a callable ``params -> such a tree``.
    """

    def resolve(tree_):
        return mask(tree_) if callable(mask) else mask

    def init_fn(params):
        return MaskedState(inner_state=inner.init(_mask_tree(params, resolve(params))))

    def update_fn(updates, state, params=None):
        mask_tree = resolve(updates)
        masked_params = None if params is None else _mask_tree(params, mask_tree)
        new_masked, inner_state = inner.update(_mask_tree(updates, mask_tree), state.inner_state, masked_params)
        new_updates = tree.map(lambda m, new, old: new if m else old, mask_tree, new_masked, updates)
        return new_updates, MaskedState(inner_state=inner_state)

    return GradientTransformation(init_fn, update_fn)
