"""``clip_by_global_norm``: rescale all updates together when their joint L2 norm is too large."""
from __future__ import annotations

import torch

from .. import tree
from .base import GradientTransformation, init_empty_state
from ..numerics import divide_by_broadcast, sqrt, weak_scalar


def _sum(leaf: torch.Tensor) -> torch.Tensor:
    # jnp.sum accumulates bfloat16/float16 in float32 and rounds the total back once.
    if leaf.dtype in (torch.bfloat16, torch.float16):
        return leaf.to(torch.float32).sum().to(leaf.dtype)
    return leaf.sum()


def global_norm(updates) -> torch.Tensor:
    """``sqrt(sum over leaves of sum(leaf**2))``, leaves added in flatten order as optax does."""
    total = 0
    for leaf in tree.leaves(updates):
        total = total + _sum(leaf * leaf)
    if isinstance(total, int):
        return torch.zeros(())
    return sqrt(total)


def clip_by_global_norm(max_norm) -> GradientTransformation:
    """Leave updates alone if ``global_norm < max_norm``, else scale them by ``max_norm / norm``.

    Per leaf the clipped value is ``(t / norm) * max_norm``, in that order (optax's).
    """

    def update_fn(updates, state, params=None):
        del params
        norm = global_norm(updates)
        keep = norm < weak_scalar(max_norm, norm)

        def clip(t):
            clipped = divide_by_broadcast(t, norm.to(t.dtype)) * weak_scalar(max_norm, t)
            return torch.where(keep, t, clipped)

        return tree.map(clip, updates), state

    return GradientTransformation(init_empty_state, update_fn)
