"""From per-leaf estimates to one optimizer step: the part of ``do_updates`` all noisers share.

The update is functional: it returns a NEW ``noiser_params`` dict (new ``opt_state``) and new
params and leaves its arguments untouched. Upstream instead writes the new optimizer state into
the ``noiser_params`` dict it is given (visible only when called outside ``jax.jit``); nothing
here relies on either behaviour, and a rejected call can never leave state half-updated.
"""
from __future__ import annotations

from collections import defaultdict

import torch

from .. import tree
from ..optim import apply_updates, resolve_solver
from ..fast.dispatch import below_autograd
from ..optim._flat import FlatLayout, NotFlat, flat_form
from ..numerics import sqrt, weak_scalar
from ..validation import (
    check_count,
    check_es_map,
    check_fitnesses,
    check_iterinfo,
    check_keys_tree,
    check_positive_real,
    check_real,
    params_device,
)
from ._member import scalar


def build_solver(lr, solver, solver_kwargs):
    """``solver(lr, **solver_kwargs)`` with ``solver`` resolved by ``optim.resolve_solver``
    (``None`` -> ``optim.sgd``, a name, a ``torch.optim.Optimizer`` class or a callable)."""
    check_real("lr", lr)
    factory = resolve_solver(solver)
    if solver_kwargs is not None and not isinstance(solver_kwargs, dict):
        raise TypeError(f"solver_kwargs must be a dict of keyword arguments; got {type(solver_kwargs).__name__}")
    return factory(lr, **(solver_kwargs or {}))


def check_init(sigma, group_size, noise_reuse, rank=1) -> None:
    """The ``init_noiser`` arguments every noiser shares."""
    check_positive_real("sigma", sigma)
    check_count("group_size", group_size, 0)
    check_count("noise_reuse", noise_reuse, 0)
    check_count("rank", rank, 1)


def check_update(noiser_params, params, base_keys, fitnesses, iterinfos, es_map) -> None:
    """Everything ``do_updates`` reads, checked before anything is computed."""
    if not isinstance(noiser_params, dict) or "opt_state" not in noiser_params or "sigma" not in noiser_params:
        raise TypeError("noiser_params must be the dict init_noiser returned (with 'sigma' and 'opt_state')")
    device = params_device(params)
    _, threads, population = check_iterinfo(iterinfos, name="iterinfos")
    if not population:
        raise ValueError(
            "iterinfos must be the population form (epochs, thread_ids): two 1-D integer tensors "
            "with one entry per member; got scalars"
        )
    check_fitnesses(fitnesses, threads.shape[0], device)
    check_keys_tree(params, base_keys)
    check_es_map(params, es_map)


def leaf_gradient(update_fn, param, base_key, fitnesses, iterinfos, sigma, frozen_noiser_params):
    """Descent direction for one leaf: ``-(estimate * sqrt(N))`` cast to ``param.dtype``.

    Stacked leaves (key ``(*S, 2)``) are estimated for all their layers at once; that equals
    upstream's scan over the leading axis.
    """
    estimate = update_fn(sigma, param, base_key.to(param.device), fitnesses, iterinfos, frozen_noiser_params)
    root = sqrt(scalar(fitnesses.shape[0], param.dtype, param.device))
    return -(estimate * weak_scalar(root, estimate)).to(param.dtype)


def gradient_tree(leaf_update, params, base_keys, es_map):
    """``leaf_update(param, key, es_class)`` over the three matching trees."""
    return tree.map(leaf_update, params, base_keys, es_map)


def batched_gradient_tree(leaf_update, params, base_keys, es_map):
    """Same values as :func:`gradient_tree`, same-shaped leaves of one es class done together.

    Leaves are grouped by ``(shape, es class)`` as upstream groups them (and by key shape, so
    a scanned and an unscanned leaf of one shape, which upstream cannot stack, stay apart),
    stacked at the promoted dtype and estimated in one call per group.
    """
    flat_params, treedef = tree.flatten(params)
    flat_keys = tree.flatten_up_to(treedef, base_keys)
    flat_classes = tree.flatten_up_to(treedef, es_map)
    groups = defaultdict(list)
    for index, (param, key, es_class) in enumerate(zip(flat_params, flat_keys, flat_classes)):
        groups[tuple(param.shape), es_class, tuple(key.shape)].append(index)
    flat_grads = [None] * len(flat_params)
    for (_, es_class, _), indices in groups.items():
        dtype = flat_params[indices[0]].dtype
        for i in indices[1:]:
            dtype = torch.promote_types(dtype, flat_params[i].dtype)
        stacked = leaf_update(
            torch.stack([flat_params[i].to(dtype) for i in indices]),
            torch.stack([flat_keys[i].to(flat_params[i].device) for i in indices]),
            es_class,
        )
        for row, index in enumerate(indices):
            flat_grads[index] = stacked[row]
    return tree.unflatten(treedef, flat_grads)


def apply_solver(frozen_noiser_params, noiser_params, params, grads):
    """One optimizer step; returns ``(new noiser_params, new params)`` (see the module docstring).

    A small tree of one dtype goes through the solver's concatenated form when it has one
    (:mod:`eggroll_torch.optim._flat`): the same values, a few ops instead of a few per leaf. The
    new params and solver state are then views of one tensor each.
    """
    solver = frozen_noiser_params["solver"]
    flat_update = flat_form(solver)
    if flat_update is not None:
        # No leaf of the flat path requires grad (a layout refuses them), so autograd has no part.
        with below_autograd():
            built = FlatLayout.build(params)
            if built is not None:
                layout, flat_params = built
                try:
                    updates, opt_state = flat_update(layout.flatten(grads), noiser_params["opt_state"], flat_params,
                                                     layout)
                except NotFlat:
                    pass
                else:
                    # apply_updates on the concatenated leaves.
                    new_params = (flat_params + updates).to(flat_params.dtype)
                    return {**noiser_params, "opt_state": opt_state}, layout.unflatten(new_params)
    updates, opt_state = solver.update(grads, noiser_params["opt_state"], params)
    return {**noiser_params, "opt_state": opt_state}, apply_updates(params, updates)
