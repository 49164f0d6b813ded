"""``trace``: the momentum accumulator of ``sgd``."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import tree
from ._flat import constant, with_flat
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

    def flat_step(g, t):
        return g + constant(decay, t) * t

    def flat_update_fn(updates, state, params, layout):
        del params
        new_trace = flat_step(updates, layout.flatten(state.trace))
        return flat_step(updates, new_trace) if nesterov else new_trace, TraceState(trace=layout.unflatten(new_trace))

    if accumulator_dtype is None:
        update_fn = with_flat(update_fn, flat_update_fn)
    return GradientTransformation(init_fn, update_fn)
