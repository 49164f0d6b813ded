"""The JAX reference side of a stack workload, everything jitted.

Upstream's way: one member's forward calls ``EggRoll.do_mm`` per layer and is vmapped over the
population; a generation is that forward, ``convert_fitnesses`` and ``do_updates`` (SGD) in one
``jax.jit``. Inference is the same network without noise on the stacked rows.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from jax_reference.models import common
from jax_reference.noiser import eggroll

ES_SEED = 1
# torch's float32 matmul precision names -> JAX's for the same arithmetic.
JAX_PRECISION = {"highest": "float32", "high": "tensorfloat32"}


class JaxStack:
    """Params, inputs and jitted steps of one stack workload on JAX's default device."""

    def __init__(self, workload, weights: list, f32_matmul: str):
        self.wl = workload
        dtype = jnp.dtype(workload.dtype)
        self.params = {str(i): jnp.asarray(np.asarray(w), dtype=dtype) for i, w in enumerate(weights)}
        self.names = [str(i) for i in range(len(weights))]
        scan_map = {k: () for k in self.params}
        self.es_map = {k: common.MM_PARAM for k in self.params}
        self.tree_key = common.simple_es_tree_key(self.params, jax.random.key(ES_SEED), scan_map)
        self.frozen, self.noiser_params = eggroll.EggRoll.init_noiser(
            self.params, workload.sigma, workload.lr, rank=workload.rank, noise_reuse=1
        )
        self.x = jax.random.normal(jax.random.key(2), (workload.members, workload.tokens, workload.width), dtype)
        # Matmul precision is read when a function is traced; float32 workloads pin it so that
        # torch and JAX do the same arithmetic.
        self._precision = ((lambda: jax.default_matmul_precision(JAX_PRECISION[f32_matmul])) if dtype == jnp.float32
                           else contextlib.nullcontext)

    def _member(self, params, noiser_params, iterinfo, x):
        h = x
        for index, name in enumerate(self.names):
            h = eggroll.EggRoll.do_mm(self.frozen, noiser_params, params[name], self.tree_key[name], iterinfo, h)
            if index < len(self.names) - 1:
                h = jnp.tanh(h)
        return jnp.mean(h.astype(jnp.float32))

    def _population(self, params, noiser_params, epoch, x):
        n = self.wl.members
        iterinfo = (jnp.full(n, epoch, dtype=jnp.int32), jnp.arange(n))
        raw = jax.vmap(self._member, in_axes=(None, None, 0, 0))(params, noiser_params, iterinfo, x)
        return raw, iterinfo

    def inference(self):
        """Callable: one batched inference pass; returns the ``(N,)`` fitnesses."""
        n, t, d = self.x.shape

        def infer(params, x):
            h = x.reshape(n * t, d)
            for index, name in enumerate(self.names):
                h = h @ params[name].T
                if index < len(self.names) - 1:
                    h = jnp.tanh(h)
            return h.reshape(n, -1).astype(jnp.float32).mean(axis=1)

        fn = self._traced(infer, self.params, self.x)
        return lambda: fn(self.params, self.x)

    def forward(self):
        """Callable: perturbed population forward + fitness (noise drawn inside, as upstream)."""
        fn = self._traced(lambda p, s, e, x: self._population(p, s, e, x)[0], self.params, self.noiser_params, 1,
                          self.x)
        state = {"epoch": 0}

        def step():
            state["epoch"] += 1
            return fn(self.params, self.noiser_params, state["epoch"], self.x)

        return step

    def generation(self):
        """Callable: one generation, each call continuing from the previous call's params."""

        def generation(params, noiser_params, epoch, x):
            raw, iterinfo = self._population(params, noiser_params, epoch, x)
            fitnesses = eggroll.EggRoll.convert_fitnesses(self.frozen, noiser_params, raw)
            return eggroll.EggRoll.do_updates(self.frozen, noiser_params, params, self.tree_key, fitnesses,
                                              iterinfo, self.es_map)

        fn = self._traced(generation, self.params, self.noiser_params, 1, self.x)
        state = {"params": self.params, "noiser_params": self.noiser_params, "epoch": 0}

        def step():
            state["epoch"] += 1
            state["noiser_params"], state["params"] = fn(state["params"], state["noiser_params"], state["epoch"],
                                                         self.x)
            return state["params"]

        return step

    def _traced(self, fn, *example):
        """``jax.jit(fn)``, traced and compiled now under the workload's matmul precision. Arrays
        are arguments, never closed over: XLA would embed them as constants (gigabytes for the
        large workloads) and spend a minute compiling them in."""
        with self._precision():
            return jax.jit(fn).lower(*example).compile()
