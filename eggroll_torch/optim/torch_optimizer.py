"""Any ``torch.optim.Optimizer`` class as a solver, outside the JAX parity guarantee.

The wrapped optimizer keeps its own tensors: ``update`` loads the current params into them, sets
their ``.grad`` to the incoming updates (the noisers hand solvers a descent gradient, the same
sign convention torch optimizers expect), takes one ``step()`` and returns the change as the
update. Its state is the optimizer object itself and is advanced in place by ``update``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .. import tree
from .base import GradientTransformation


class TorchOptimizerState(NamedTuple):
    """The live optimizer and the tensors it owns, one per param leaf (flatten order)."""

    optimizer: torch.optim.Optimizer
    tensors: list


def from_torch_optimizer(optimizer_cls: type[torch.optim.Optimizer]):
    """Solver factory ``(learning_rate, **kwargs) -> GradientTransformation`` for ``optimizer_cls``.

    ``kwargs`` go to the optimizer's constructor, e.g. ``betas=(0.9, 0.999)`` for Adam.
    """
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
        raise TypeError(f"optimizer_cls must be a torch.optim.Optimizer subclass; got {optimizer_cls!r}")

    def factory(learning_rate, **kwargs) -> GradientTransformation:
        def init_fn(params):
            tensors = [p.detach().clone().requires_grad_(True) for p in tree.leaves(params)]
            return TorchOptimizerState(optimizer_cls(tensors, lr=learning_rate, **kwargs), tensors)

        def update_fn(updates, state, params=None):
            if params is None:
                raise ValueError("params: a torch.optim solver needs update(updates, state, params)")
            flat_params, treedef = tree.flatten(params)
            flat_updates = tree.flatten_up_to(treedef, updates, name="updates")
            with torch.no_grad():
                for owned, p, g in zip(state.tensors, flat_params, flat_updates):
                    owned.copy_(p)
                    owned.grad = g.detach().to(owned.dtype).clone()
                state.optimizer.step()
                changes = [owned.detach() - p for owned, p in zip(state.tensors, flat_params)]
            return tree.unflatten(treedef, changes), state

        return GradientTransformation(init_fn, update_fn)

    factory.__name__ = f"torch_{optimizer_cls.__name__.lower()}"
    return factory
