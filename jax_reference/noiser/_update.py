"""From per-parameter estimates to an optimizer step: the part every noiser's update shares."""
from collections import defaultdict

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import tree_flatten, tree_unflatten

from ._validate import check_count


def build_solver(lr, solver, solver_kwargs):
    """The optax transformation ``solver(lr, **solver_kwargs)``; ``solver`` defaults to ``optax.sgd``."""
    if solver is None:
        solver = optax.sgd
    if solver_kwargs is None:
        solver_kwargs = {}
    return solver(lr, **solver_kwargs)


def check_init(group_size, noise_reuse, rank=1):
    """The ``init_noiser`` arguments every noiser shares, checked before anything is built."""
    check_count("group_size", group_size, 0)
    check_count("noise_reuse", noise_reuse, 0)
    check_count("rank", rank, 1)


def leaf_gradient(update_fn, param, base_key, fitnesses, iterinfos, sigma, frozen_noiser_params):
    """Descent direction handed to the optimizer for one parameter: ``-(estimate * sqrt(N))``.

    ``N = fitnesses.size``. A scalar ``base_key`` estimates ``param`` directly; a key array of
    shape ``(L,)`` (a stacked parameter, see ``models.common.recursive_scan_split``) scans
    ``update_fn`` over the leading axis of ``param`` and ``base_key`` together. The scaled
    estimate is cast to ``param.dtype`` before negation.
    """
    if len(base_key.shape) == 0:
        estimate = update_fn(sigma, param, base_key, fitnesses, iterinfos, frozen_noiser_params)
    else:
        estimate = jax.lax.scan(
            lambda _, x: (0, update_fn(sigma, x[0], x[1], fitnesses, iterinfos, frozen_noiser_params)),
            0,
            xs=(param, base_key),
        )[1]
    return -(estimate * jnp.sqrt(fitnesses.size)).astype(param.dtype)


def gradient_tree(leaf_update, params, base_keys, es_map):
    """``leaf_update(param, key, es_class)`` mapped over the three matching trees."""
    return jax.tree.map(leaf_update, params, base_keys, es_map)


def batched_gradient_tree(leaf_update, params, base_keys, es_map):
    """Same values as :func:`gradient_tree`, computing same-shaped leaves together.

    Leaves are grouped by ``(shape, es_class)`` (not dtype: a group of mixed dtypes is stacked
    at the promoted dtype), stacked, and ``leaf_update`` is vmapped over each group, which keeps
    the traced program small for models with many identical layers.
    """
    flat_params, treedef = tree_flatten(params)
    flat_keys, _ = tree_flatten(base_keys)
    flat_classes, _ = tree_flatten(es_map)
    groups = defaultdict(list)
    for index, (param, es_class) in enumerate(zip(flat_params, flat_classes)):
        groups[param.shape, es_class].append(index)
    flat_grads = [None] * len(flat_params)
    for (_, es_class), indices in groups.items():
        stacked = jax.vmap(lambda p, k: leaf_update(p, k, es_class))(
            jnp.stack([flat_params[i] for i in indices]),
            jnp.stack([flat_keys[i] for i in indices]),
        )
        for row, index in enumerate(indices):
            flat_grads[index] = stacked[row]
    return tree_unflatten(treedef, flat_grads)


def apply_solver(frozen_noiser_params, noiser_params, params, grads):
    """One optimizer step: returns ``(noiser_params, new_params)``.

    Like upstream, the new optimizer state is written into the ``noiser_params`` dict that was
    passed in (and that same dict is returned), and ``solver.update`` receives ``params``, so
    decoupled weight decay (``optax.adamw``) applies to every leaf.
    """
    updates, noiser_params["opt_state"] = frozen_noiser_params["solver"].update(
        grads, noiser_params["opt_state"], params
    )
    return noiser_params, optax.apply_updates(params, updates)
