"""The JAX side of a trainer workload: the same network written with ``jax_reference``'s
primitives, one member's forward vmapped over the population as upstream does, jitted.

Every ``MM_PARAM`` matrix goes through ``EggRoll.do_mm``, every ``PARAM`` leaf through
``get_noisy_standard``, embeddings are looked up without noise (``EMB_PARAM``); the ES classes
are the torch trainer's, the parameters the torch model's initial weights, and a generation is
the population forward, ``convert_fitnesses`` and ``do_updates`` (SGD) in one ``jax.jit``.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from eggroll_torch.nn.param_tree import nest
from jax_reference.models import common
from jax_reference.noiser import eggroll

ES_SEED = 1
JAX_PRECISION = {"highest": "float32", "high": "tensorfloat32"}
EggRoll = eggroll.EggRoll


def _leaf(tree: dict, path: str):
    for part in path.split("."):
        tree = tree[part]
    return tree


class JaxTrainerSide:
    """Params, inputs and the jitted generation of one trainer workload on JAX's default device.

    ``initial``: ``{path: float32 array}`` of the torch model; ``classes``: ``{path: ES class}``
    from the torch trainer; ``inputs``/``targets``: the torch side's inputs as numpy arrays.
    """

    def __init__(self, workload, initial: dict, classes: dict, inputs, targets, f32_matmul: str):
        self.wl = workload
        self.dtype = jnp.dtype(workload.dtype)
        self.params = nest({path: jnp.asarray(value, dtype=self.dtype) for path, value in initial.items()})
        self.es_map = nest(dict(classes))
        self.tree_key = common.simple_es_tree_key(self.params, jax.random.key(ES_SEED),
                                                  nest({path: () for path in initial}))
        self.frozen, self.noiser_params = EggRoll.init_noiser(self.params, workload.sigma, workload.lr,
                                                              rank=workload.rank, noise_reuse=1)
        self.inputs = jnp.asarray(inputs, dtype=jnp.int32 if workload.model == "gpt" else self.dtype)
        self.targets = None if targets is None else jnp.asarray(targets, dtype=jnp.int32)
        self.has = set(initial)
        self._precision = ((lambda: jax.default_matmul_precision(JAX_PRECISION[f32_matmul]))
                           if self.dtype == jnp.float32 else contextlib.nullcontext)

    # -- one member's layers ----------------------------------------------------------------
    def _noisy(self, params, noiser_params, iterinfo, path):
        return EggRoll.get_noisy_standard(self.frozen, noiser_params, _leaf(params, path), _leaf(self.tree_key, path),
                                          iterinfo)

    def _linear(self, params, noiser_params, iterinfo, name, x):
        y = EggRoll.do_mm(self.frozen, noiser_params, _leaf(params, f"{name}.weight"),
                          _leaf(self.tree_key, f"{name}.weight"), iterinfo, x)
        if f"{name}.bias" in self.has:
            y = y + self._noisy(params, noiser_params, iterinfo, f"{name}.bias")
        return y

    def _layer_norm(self, params, noiser_params, iterinfo, name, x):
        wide = x.astype(jnp.float32)
        mean = wide.mean(-1, keepdims=True)
        var = ((wide - mean) ** 2).mean(-1, keepdims=True)
        normed = ((wide - mean) / jnp.sqrt(var + 1e-5)).astype(x.dtype)
        return (normed * self._noisy(params, noiser_params, iterinfo, f"{name}.weight")
                + self._noisy(params, noiser_params, iterinfo, f"{name}.bias"))

    def _member(self, params, noiser_params, iterinfo, x, targets):
        wl, ctx = self.wl, (params, noiser_params, iterinfo)
        if wl.model == "stack":
            h = x
            for i in range(wl.layers):
                h = self._linear(*ctx, f"layers.{i}", h)
                if i < wl.layers - 1:
                    h = jnp.tanh(h)
            return h.astype(jnp.float32).mean()
        if wl.model == "blocks":
            h = x
            for i in range(wl.layers):
                inner = self._linear(*ctx, f"blocks.{i}.fc1", self._layer_norm(*ctx, f"blocks.{i}.ln", h))
                h = h + self._linear(*ctx, f"blocks.{i}.fc2", jax.nn.gelu(inner, approximate=False))
            return self._linear(*ctx, "head", h).astype(jnp.float32).mean()
        tokens = x
        h = params["tokens"]["weight"][tokens] + params["positions"]["weight"][jnp.arange(tokens.shape[-1])]
        heads, width = wl.heads, wl.width
        for i in range(wl.layers):
            name = f"blocks.{i}"
            qkv = self._linear(*ctx, f"{name}.attn.qkv", self._layer_norm(*ctx, f"{name}.ln1", h))
            q, k, v = (t.reshape(*t.shape[:-1], heads, width // heads) for t in jnp.split(qkv, 3, axis=-1))
            attended = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(h.shape)
            h = h + self._linear(*ctx, f"{name}.attn.proj", attended)
            inner = self._linear(*ctx, f"{name}.fc1", self._layer_norm(*ctx, f"{name}.ln2", h))
            h = h + self._linear(*ctx, f"{name}.fc2", jax.nn.gelu(inner, approximate=False))
        h = self._layer_norm(*ctx, "ln", h)
        logits = h @ params["tokens"]["weight"].T if wl.tied else self._linear(*ctx, "head", h)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.take_along_axis(logp, targets[..., None], axis=-1).mean()

    def generation(self):
        """Callable: one jitted generation, each call continuing from the previous call's params."""
        n = self.wl.members

        def generation(params, noiser_params, epoch, x, targets):
            iterinfo = (jnp.full(n, epoch, dtype=jnp.int32), jnp.arange(n))
            raw = jax.vmap(self._member, in_axes=(None, None, 0, 0, 0 if targets is not None else None))(
                params, noiser_params, iterinfo, x, targets)
            fitnesses = EggRoll.convert_fitnesses(self.frozen, noiser_params, raw)
            return EggRoll.do_updates(self.frozen, noiser_params, params, self.tree_key, fitnesses, iterinfo,
                                      self.es_map)

        with self._precision():
            fn = jax.jit(generation).lower(self.params, self.noiser_params, 1, self.inputs, self.targets).compile()
        state = {"params": self.params, "noiser_params": self.noiser_params, "epoch": 0}

        def step():
            state["epoch"] += 1
            state["noiser_params"], state["params"] = fn(state["params"], state["noiser_params"], state["epoch"],
                                                         self.inputs, self.targets)
            return state["params"]

        return step


def numpy_inputs(side) -> tuple[np.ndarray, np.ndarray | None]:
    """The torch side's inputs (and targets) as numpy arrays for :class:`JaxTrainerSide`."""
    inputs = side.inputs.cpu()
    inputs = inputs.numpy() if side.targets is not None else inputs.float().numpy()
    targets = None if side.targets is None else side.targets.cpu().numpy()
    return inputs, targets
