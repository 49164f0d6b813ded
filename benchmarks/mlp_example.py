"""Upstream's end-to-end MLP example as a benchmark: in JAX as upstream runs it (jitted), and in
torch through the public trainer (``EggrollTrainer.step`` on the MLP as an ``nn.Sequential``).

Same model, keys and inputs on both sides: the MLP and its keys come from
:mod:`jax_reference.models.common` (``model_key, es_key = fold_in(key(0), 0 | 1)``) and are
copied to torch. A generation is the population forward, the fitness ``-(y - 2)**2``, fitness
shaping and an ``adamw`` step; the inputs stay fixed so that both sides time the same work.
With ``noise_reuse=0`` (upstream's default) the noise never changes, which the trainer exploits
by drawing it once; JAX redraws it every call, as upstream does.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from torch import nn

from eggroll_torch import random as es_random
from eggroll_torch.nn import EggrollTrainer
from jax_reference.models import common
from jax_reference.noiser import eggroll


class MLPExample:
    """Both implementations of the example, built from one JAX initialisation."""

    def __init__(self, workload, device: str):
        self.wl = workload
        self.device = device
        key = jax.random.key(0)
        self.frozen_params, self.params, scan_map, self.es_map = common.MLP.rand_init(
            jax.random.fold_in(key, 0), in_dim=workload.in_dim, out_dim=1, hidden_dims=list(workload.hidden),
            use_bias=True, activation="relu", dtype=workload.dtype,
        )
        self.es_key = jax.random.fold_in(key, 1)
        self.tree_key = common.simple_es_tree_key(self.params, self.es_key, scan_map)
        data_key = jax.random.split(jax.random.fold_in(key, 2))[1]
        self.x = jax.random.normal(data_key, (workload.members, workload.in_dim), dtype=workload.dtype)
        self.layers = len(self.params)

    def jax_generation(self):
        """Callable: one jitted generation continuing from the previous call's state."""
        n = self.wl.members
        frozen, noiser_params = eggroll.EggRoll.init_noiser(
            self.params, self.wl.sigma, self.wl.lr, solver=optax.adamw, solver_kwargs={"b1": 0.9, "b2": 0.999},
            rank=self.wl.rank,
        )

        def generation(params, noiser_params, epoch):
            iterinfo = (jnp.full(n, epoch, dtype=jnp.int32), jnp.arange(n))
            out = jax.vmap(lambda i, x: common.MLP.forward(eggroll.EggRoll, frozen, noiser_params, self.frozen_params,
                                                           params, self.tree_key, i, x))(iterinfo, self.x)
            fitnesses = eggroll.EggRoll.convert_fitnesses(frozen, noiser_params, -((out - 2) ** 2)[:, 0])
            return eggroll.EggRoll.do_updates(frozen, noiser_params, params, self.tree_key, fitnesses, iterinfo,
                                              self.es_map)

        fn = jax.jit(generation).lower(self.params, noiser_params, 0).compile()
        state = {"params": self.params, "noiser_params": noiser_params, "epoch": 0}

        def step():
            state["noiser_params"], state["params"] = fn(state["params"], state["noiser_params"], state["epoch"])
            state["epoch"] += 1
            return state["params"]

        return step

    def jax_inference(self):
        """Callable: the unperturbed MLP on the same inputs (jitted)."""
        frozen, noiser_params = eggroll.EggRoll.init_noiser(self.params, self.wl.sigma, self.wl.lr, rank=self.wl.rank)

        def infer(params):
            return common.MLP.forward(eggroll.EggRoll, frozen, noiser_params, self.frozen_params, params,
                                      self.tree_key, None, self.x)

        fn = jax.jit(infer).lower(self.params).compile()
        return lambda: fn(self.params)

    def _torch_params(self) -> dict:
        dtype = getattr(torch, self.wl.dtype)
        return {name: {leaf: torch.from_numpy(np.array(value, dtype=np.float32)).to(self.device, dtype)
                       for leaf, value in layer.items()}
                for name, layer in self.params.items()}

    def _torch_inputs(self) -> torch.Tensor:
        dtype = getattr(torch, self.wl.dtype)
        return torch.from_numpy(np.array(self.x, dtype=np.float32)).to(self.device, dtype)

    def torch_inference(self):
        """Callable: the unperturbed MLP in torch on the same inputs."""
        params = self._torch_params()
        x = self._torch_inputs()

        def step():
            h = x
            for i in range(self.layers):
                h = torch.addmm(params[str(i)]["bias"], h, params[str(i)]["weight"].T)
                if i < self.layers - 1:
                    h = h.relu()
            return h

        return step

    def torch_generation(self):
        """Callable: one ``EggrollTrainer.step`` on the same MLP as an ``nn.Sequential``."""
        params = self._torch_params()
        modules = []
        for i in range(self.layers):
            weight = params[str(i)]["weight"]
            linear = nn.Linear(weight.shape[1], weight.shape[0], device=self.device, dtype=weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(weight)
                linear.bias.copy_(params[str(i)]["bias"])
            modules.append(linear)
            if i < self.layers - 1:
                modules.append(nn.ReLU())
        es_key = es_random.wrap_key_data(np.asarray(jax.random.key_data(self.es_key)), device=self.device)
        trainer = EggrollTrainer(nn.Sequential(*modules), self.wl.sigma, self.wl.lr, population_size=self.wl.members,
                                 rank=self.wl.rank, solver="adamw", solver_kwargs={"b1": 0.9, "b2": 0.999},
                                 noise_reuse=0, es_key=es_key)
        x = self._torch_inputs()

        def fitness(population):
            return -((population(x)[:, 0] - 2) ** 2)

        return lambda: trainer.step(fitness)
