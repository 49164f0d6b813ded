"""Upstream's end-to-end example in torch: an MLP regressing ``f(x) = 2`` with EGGROLL.

Step for step what upstream's ``tests/end_to_end_test.py`` does, computing every forward pass,
input batch (with ``eggroll_torch.random``) and fitness itself: EGGROLL, MLP ``3 -> 16 -> 16 ->
1`` with relu and biases, sigma 0.2, lr 0.03, 64 members, ``adamw(b1=0.9, b2=0.999)``, rank 8,
``model_key, es_key, data_key = fold_in(key(0), 0 | 1 | 2)``, and each epoch
``data_key, batch_key = split(data_key)``, inputs ``normal(batch_key, (64, 3))`` (float32, or
float64 for a float64 model, as JAX draws them with x64 enabled).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import optim, random
from ..models import common
from ..noiser import eggroll
from ..numerics import default_float_dtype


class MLPExampleRun(NamedTuple):
    """What :func:`run_mlp_example` returns.

    ``initial_params``: params before epoch 0; ``params[e]``: params after epoch ``e``.
    ``raw_scores[e]`` ``(num_envs,)``: each member's fitness in epoch ``e``;
    ``validation_scores[e]``: the unperturbed model's fitness on the same inputs;
    ``fitnesses[e]``: the shaped fitnesses given to ``do_updates``; ``inputs[e]``
    ``(num_envs, in_dim)``. Plus the key tree, es_map and noiser params as built / final.
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


def regression_fitness(outputs: torch.Tensor) -> torch.Tensor:
    """``-(y - 2)**2`` of the first output: ``(num_envs, 1) -> (num_envs,)``."""
    shifted = outputs - 2
    return -(shifted * shifted)[:, 0]


def run_mlp_example(noiser=eggroll.EggRoll, epochs: int = 10, *, sigma=0.2, lr=0.03, num_envs: int = 64,
                    in_dim: int = 3, hidden_dims=(16, 16), rank: int = 8, solver=optim.adamw, solver_kwargs=None,
                    noiser_kwargs=None, seed: int = 0, dtype=torch.float32, device="cpu") -> MLPExampleRun:
    """Run the example for ``epochs`` epochs on ``device``; returns every epoch's params and scores.

    ``noiser``: any noiser class; ``noiser_kwargs`` are extra ``init_noiser`` keywords (they
    override ``rank``). ``solver_kwargs`` defaults to ``{"b1": 0.9, "b2": 0.999}``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if solver_kwargs is None:
        solver_kwargs = {"b1": 0.9, "b2": 0.999}
    key = random.key(seed, device=device)
    model_key, es_key, data_key = (random.fold_in(key, i) for i in range(3))
    frozen_params, params, scan_map, es_map = common.MLP.rand_init(
        model_key, in_dim=in_dim, out_dim=1, hidden_dims=list(hidden_dims), use_bias=True, activation="relu",
        dtype=dtype,
    )
    es_tree_key = common.simple_es_tree_key(params, es_key, scan_map)
    frozen_noiser_params, noiser_params = noiser.init_noiser(
        params, sigma, lr, solver=solver, solver_kwargs=solver_kwargs, **({"rank": rank} | (noiser_kwargs or {}))
    )

    def forward(iterinfo, inputs):
        return common.MLP.forward(noiser, frozen_noiser_params, noiser_params, frozen_params, params, es_tree_key,
                                  iterinfo, inputs)

    run = MLPExampleRun(params, [], [], [], [], [], es_tree_key, es_map, frozen_noiser_params, None)
    for epoch in range(epochs):
        data_key, batch_key = random.split(data_key)
        inputs = random.normal(batch_key, (num_envs, in_dim), dtype=default_float_dtype(common.as_dtype(dtype)))
        iterinfo = (torch.full((num_envs,), epoch, dtype=torch.int32, device=device),
                    torch.arange(num_envs, device=device))
        run.validation_scores.append(regression_fitness(forward(None, inputs)))
        raw_scores = regression_fitness(forward(iterinfo, inputs[:, None, :])[:, 0, :])
        fitnesses = noiser.convert_fitnesses(frozen_noiser_params, noiser_params, raw_scores)
        noiser_params, params = noiser.do_updates(frozen_noiser_params, noiser_params, params, es_tree_key,
                                                  fitnesses, iterinfo, es_map)
        run.inputs.append(inputs)
        run.raw_scores.append(raw_scores)
        run.fitnesses.append(fitnesses)
        run.params.append(params)
    return run._replace(noiser_params=noiser_params)
