"""``trace``: the momentum accumulator of ``sgd``."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import tree
from .base import GradientTransformation
from ..numerics import weak_scalar


class TraceState(NamedTuple):
    """The running momentum, one tensor per parameter."""

    trace: Any


def trace(decay, nesterov: bool = False, accumulator_dtype: torch.dtype | None = None) -> GradientTransformation:
    """Momentum: ``t <- g + decay * t``; returns ``t`` (or ``g + decay * t`` again with Nesterov).

    ``accumulator_dtype`` stores the trace in that dtype (default: each parameter's dtype).
    """

    def init_fn(params):
        return TraceState(trace=tree.map(lambda p: torch.zeros_like(p, dtype=accumulator_dtype), params))

    def step(g, t):
        return g + weak_scalar(decay, t) * t

    def update_fn(updates, state, params=None):
        del params
        new_trace = tree.map(step, updates, state.trace)
        updates = tree.map(step, updates, new_trace) if nesterov else new_trace
        if accumulator_dtype is not None:
            new_trace = tree.map(lambda t: t.to(accumulator_dtype), new_trace)
        return updates, TraceState(trace=new_trace)

    return GradientTransformation(init_fn, update_fn)
