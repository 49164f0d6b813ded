"""The optimizers upstream passes as ``solver``: ``sgd``, ``adam``, ``adamw`` (optax 0.2.8 defaults)."""
from __future__ import annotations

import torch

from ._accumulation import trace
from ._adam import scale_by_adam
from ._adding import add_decayed_weights
from ._combining import chain
from ._scaling import scale_by_learning_rate
from .base import GradientTransformation, identity


def sgd(
    learning_rate,
    momentum=None,
    nesterov: bool = False,
    accumulator_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    """``-learning_rate * g``, or with momentum ``-learning_rate * t``, ``t <- g + momentum * t``."""
    accumulate = identity() if momentum is None else trace(momentum, nesterov, accumulator_dtype)
    return chain(accumulate, scale_by_learning_rate(learning_rate))


def adam(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: torch.dtype | None = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam: ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``."""
    return chain(
        scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype: torch.dtype | None = None,
    weight_decay=1e-4,
    mask=None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW with decoupled decay: the Adam step, plus ``weight_decay * param``, times ``-lr``.

    Note optax's default ``weight_decay=1e-4`` applies to every leaf unless ``mask`` says
    otherwise (``torch.optim.AdamW`` defaults to 1e-2).
    """
    return chain(
        scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
