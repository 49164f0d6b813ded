"""Tensor ops below autograd's dispatch layers, for blocks of ops where autograd has no part.

Every torch op first passes the Autograd and ADInplaceOrView dispatch layers (graph recording,
view tracking, version counters), even when no tensor involved requires grad. For the
microsecond ops of a small model that is a sizeable share of their time: about a sixth of the
MLP example's generation on the CPU. :func:`below_autograd` skips both layers for a block, as
torch's own custom-op and functorch machinery does internally. Values are unchanged (the same
kernels run); what the block creates has no autograd history and no view tracking (a view made
inside does not know its base), so callers use it only for internal computations whose inputs
require no grad, and never to modify in place a tensor that autograd might have saved.
"""
from __future__ import annotations

import contextlib

import torch

_BELOW_AUTOGRAD = getattr(torch._C, "_AutoDispatchBelowADInplaceOrView", None)


def below_autograd(*tensors: torch.Tensor):
    """A context in which ops skip the autograd layers, or a no-op context when any of
    ``tensors`` requires grad, a functorch transform (vmap, grad) is active, or this torch lacks
    the guard."""
    if _BELOW_AUTOGRAD is None or torch._C._functorch.peek_interpreter_stack() is not None:
        return contextlib.nullcontext()
    for tensor in tensors:
        if tensor.requires_grad:
            return contextlib.nullcontext()
    return _BELOW_AUTOGRAD()
