"""Noiser state (sigma, optimizer state) as plain containers that ``torch.save``/``torch.load``
handle with ``weights_only=True``, and back.

The state's tree (NamedTuples of the optimizers included) is flattened in :mod:`eggroll_torch.tree`
order; only the leaves are saved. Loading rebuilds the tree from the receiving trainer's own
state, so both trainers must be built with the same solver and parameters. A wrapped
``torch.optim`` optimizer leaf is saved as its ``state_dict()``.
"""
from __future__ import annotations

import copy
import numbers

import torch

from eggroll_torch import tree


def pack(noiser_params) -> list:
    """Leaves of ``noiser_params``: tensors cloned, optimizers as state dicts, numbers as is."""
    packed = []
    for leaf in tree.leaves(noiser_params):
        if isinstance(leaf, torch.Tensor):
            packed.append(leaf.detach().clone())
        elif isinstance(leaf, torch.optim.Optimizer):
            packed.append(copy.deepcopy(leaf.state_dict()))
        else:
            packed.append(leaf)
    return packed


def check_packed(current, packed) -> list:
    """Validate ``packed`` against the live ``current`` state; returns leaves ready for :func:`unpack`.

    Raises ``ValueError``/``TypeError`` when the leaf count, a tensor's shape or dtype, or a
    leaf's kind differs (a state saved with another solver or another model).
    """
    live = tree.leaves(current)
    if not isinstance(packed, (list, tuple)) or len(packed) != len(live):
        got = len(packed) if isinstance(packed, (list, tuple)) else type(packed).__name__
        raise ValueError(
            f"state_dict['noiser_state'] holds {got} leaves but this trainer's solver state has "
            f"{len(live)}; load a state saved by a trainer with the same solver and model"
        )
    ready = []
    for index, (mine, saved) in enumerate(zip(live, packed)):
        where = f"state_dict['noiser_state'][{index}]"
        if isinstance(mine, torch.Tensor):
            if not isinstance(saved, torch.Tensor):
                raise TypeError(f"{where} must be a tensor like this trainer's, got {type(saved).__name__}")
            if saved.shape != mine.shape or saved.dtype != mine.dtype:
                raise ValueError(
                    f"{where} is {saved.dtype} {tuple(saved.shape)} but this trainer's is "
                    f"{mine.dtype} {tuple(mine.shape)}; load a state saved with the same solver and model"
                )
            ready.append(saved.detach().to(device=mine.device, copy=True))
        elif isinstance(mine, torch.optim.Optimizer):
            if not isinstance(saved, dict):
                raise TypeError(f"{where} must be a torch.optim state dict, got {type(saved).__name__}")
            ready.append(saved)
        elif isinstance(mine, numbers.Number):
            if isinstance(saved, bool) or not isinstance(saved, numbers.Number):
                raise TypeError(f"{where} must be a number like this trainer's {mine!r}, got {saved!r}")
            ready.append(saved)
        else:
            ready.append(saved)
    return ready


def unpack(current, ready: list):
    """The state tree of ``current`` with leaves from :func:`check_packed`.

    A wrapped ``torch.optim`` optimizer keeps its identity: it loads its saved state dict, and
    the tensors it steps are overwritten in place (a new tensor would not be the one it steps).
    """
    live, treedef = tree.flatten(current)
    optimizers = [leaf for leaf in live if isinstance(leaf, torch.optim.Optimizer)]
    stepped = {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
    leaves = []
    for mine, saved in zip(live, ready):
        if isinstance(mine, torch.optim.Optimizer):
            mine.load_state_dict(saved)
            leaves.append(mine)
        elif isinstance(mine, torch.Tensor) and id(mine) in stepped:
            with torch.no_grad():
                mine.copy_(saved)
            leaves.append(mine)
        else:
            leaves.append(saved)
    return tree.unflatten(treedef, leaves)
