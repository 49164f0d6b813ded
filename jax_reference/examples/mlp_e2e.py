"""Upstream's end-to-end example: an MLP regressing ``f(x) = 2`` with evolution strategies.

The loop reproduces upstream's ``tests/end_to_end_test.py`` step for step (same keys, same jit
boundaries, fitness shaping run eagerly), so params after every epoch can be compared bit for
bit with upstream and with other backends. Defaults are upstream's: EGGROLL, MLP ``3 -> 16 -> 16
-> 1`` with relu, sigma 0.2, lr 0.03, 64 members, ``optax.adamw(b1=0.9, b2=0.999)``, rank 8,
``model_key, es_key, data_key = fold_in(key(0), 0 | 1 | 2)``.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_reference.models import common
from jax_reference.noiser import eggroll


class MLPExampleRun(NamedTuple):
    """What :func:`run_mlp_example` returns.

    ``initial_params``: params before epoch 0. ``params[e]``: params after epoch ``e``.
    ``raw_scores[e]``: ``(num_envs,)`` fitness of each member in epoch ``e``;
    ``validation_scores[e]``: ``(num_envs,)`` fitness of the unperturbed model on the same inputs;
    ``fitnesses[e]``: shaped fitnesses handed to ``do_updates``; ``inputs[e]``: ``(num_envs, in_dim)``.
    ``es_tree_key``, ``es_map``, ``frozen_noiser_params`` and final ``noiser_params`` as built.
    """

    initial_params: Any
    params: list
    raw_scores: list
    validation_scores: list
    fitnesses: list
    inputs: list
    es_tree_key: Any
    es_map: Any
    frozen_noiser_params: dict
    noiser_params: dict


def regression_fitness(outputs):
    """``-(y - 2)**2`` of the first output: ``(num_envs, 1) -> (num_envs,)``."""
    return -((outputs - 2) ** 2)[:, 0]


def run_mlp_example(noiser=eggroll.EggRoll, epochs=10, *, model=common.MLP,
                    es_tree_key_fn=common.simple_es_tree_key, sigma=0.2, lr=0.03, num_envs=64,
                    in_dim=3, hidden_dims=(16, 16), rank=8, solver=optax.adamw,
                    solver_kwargs=None, noiser_kwargs=None, seed=0, dtype="float32"):
    """Run the example for ``epochs`` epochs and return every epoch's params and scores.

    ``noiser``: any noiser class (``noiser_kwargs`` are extra ``init_noiser`` keywords, e.g.
    ``{"group_size": 64}`` for ``EggRollBS``; they override ``rank``). ``model`` and
    ``es_tree_key_fn`` let the same loop drive another implementation of the MLP (upstream's,
    to compare against). ``solver_kwargs`` defaults to ``{"b1": 0.9, "b2": 0.999}``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if solver_kwargs is None:
        solver_kwargs = {"b1": 0.9, "b2": 0.999}
    key = jax.random.key(seed)
    model_key = jax.random.fold_in(key, 0)
    es_key = jax.random.fold_in(key, 1)
    data_key = jax.random.fold_in(key, 2)

    frozen_params, params, scan_map, es_map = model.rand_init(
        model_key, in_dim=in_dim, out_dim=1, hidden_dims=list(hidden_dims), use_bias=True,
        activation="relu", dtype=dtype,
    )
    es_tree_key = es_tree_key_fn(params, es_key, scan_map)
    frozen_noiser_params, noiser_params = noiser.init_noiser(
        params, sigma, lr, solver=solver, solver_kwargs=solver_kwargs, **({"rank": rank} | (noiser_kwargs or {}))
    )

    def member_forward(n, p, i, x):
        return model.forward(noiser, frozen_noiser_params, n, frozen_params, p, es_tree_key, i, x)

    def plain_forward(n, p, x):
        return model.forward(noiser, frozen_noiser_params, n, frozen_params, p, es_tree_key, None, x)

    jit_forward = jax.jit(jax.vmap(member_forward, in_axes=(None, None, 0, 0)))
    jit_forward_eval = jax.jit(jax.vmap(plain_forward, in_axes=(None, None, 0)))
    jit_update = jax.jit(
        lambda n, p, f, i: noiser.do_updates(frozen_noiser_params, n, p, es_tree_key, f, i, es_map)
    )
    jit_fitness = jax.jit(regression_fitness)

    run = MLPExampleRun(params, [], [], [], [], [], es_tree_key, es_map, frozen_noiser_params, None)
    for epoch in range(epochs):
        data_key, batch_key = jax.random.split(data_key)
        inputs = jax.random.normal(batch_key, (num_envs, in_dim))
        iterinfo = (jnp.full(num_envs, epoch, dtype=jnp.int32), jnp.arange(num_envs))
        run.validation_scores.append(jit_fitness(jit_forward_eval(noiser_params, params, inputs)))
        raw_scores = jit_fitness(jit_forward(noiser_params, params, iterinfo, inputs))
        fitnesses = noiser.convert_fitnesses(frozen_noiser_params, noiser_params, raw_scores)
        noiser_params, params = jit_update(noiser_params, params, fitnesses, iterinfo)
        run.inputs.append(inputs)
        run.raw_scores.append(raw_scores)
        run.fitnesses.append(fitnesses)
        run.params.append(params)
    return run._replace(noiser_params=noiser_params)
