"""Adapter for any JAX package with upstream HyperscaleES's API (our ``jax_reference``, upstream).

Both expose ``noiser.<module>.<Class>`` with ``init_noiser / do_mm / do_Tmm / get_noisy_standard /
convert_fitnesses / do_updates`` class methods, module-level ``get_lora_update_params`` etc., and
``models.common.{MLP, simple_es_tree_key}``. :class:`JaxApiAdapter` drives them through exactly
those entry points, vmapping over the population the way upstream's examples do.
"""
from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from functools import partial
from types import ModuleType

import numpy as np

from .. import trees
from ..spec import NOISERS, NoiserConfig, Population, SolverSpec, Trajectory
from ..tolerances import to_numpy
from . import base
from ._api_contract import describe


@dataclass(frozen=True)
class JaxApi:
    """The pieces of an upstream-shaped package the adapter calls.

    ``noisers``: name -> noiser class (upstream's ``all_noisers``); ``common``: the
    ``models.common`` module; ``run_mlp_example``: the end-to-end loop
    (``jax_reference.examples.mlp_e2e.run_mlp_example``'s signature); ``rl``: the ``models.rl``
    module, ``None`` where gymnax or distrax is missing; ``llm``: the ``models.llm`` package with
    its ``rwkv7`` and ``qrwkv6`` modules; ``llm_loop``: the LLM evolution loop
    (``jax_reference.llm``: ``sample_token``, ``Evolution``, ``EvolutionConfig``) and ``bandits``
    its tasks (``environments.llm_bandits``), ``None`` where the backend has no such library form
    (upstream's loop is a script).
    """

    noisers: dict
    common: ModuleType
    run_mlp_example: object
    rl: ModuleType | None = None
    llm: ModuleType | None = None
    llm_loop: ModuleType | None = None
    bandits: ModuleType | None = None


def _np_dtype(name: str):
    import jax.numpy as jnp

    return jnp.dtype(name)


def _quiet():
    # upstream's low-rank update prints shapes at trace time; keep the harness output clean.
    return contextlib.redirect_stdout(io.StringIO())


def _out(x) -> np.ndarray:
    """A host copy in the result's own dtype (bfloat16 stays bfloat16; a key becomes its words)."""
    return to_numpy(x)


class JaxApiAdapter(base.Adapter):
    """Drives an upstream-shaped JAX package; subclasses supply :meth:`api` and :meth:`info`."""

    capabilities = frozenset(
        {base.CONVERT_FITNESSES, base.JAX_RNG, base.NOISE, base.SPARSE_NOISE, base.FORWARD,
         base.TREE_KEYS, base.SCAN_MAP, base.UPDATES, base.BATCHED_UPDATE, base.OPTIMIZER, base.API,
         base.TRAJECTORY, base.RL_POLICY, base.RWKV7, base.QRWKV6, base.LLM_LOOP}
        | {base.noiser_capability(n) for n in NOISERS}
        | {base.dtype_capability(d) for d in ("float32", "bfloat16", "float16")}
    )

    def api(self) -> JaxApi:
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------------------
    def _cls(self, config: NoiserConfig):
        return self.api().noisers[config.noiser]

    def _solver(self, spec: SolverSpec | None):
        import optax

        if spec is None:
            return {}
        return {"solver": getattr(optax, spec.name), "solver_kwargs": spec.library_kwargs(_np_dtype)}

    def _init(self, config: NoiserConfig, params):
        cls = self._cls(config)
        return cls.init_noiser(params, config.sigma, config.lr, **self._solver(config.solver),
                               **config.init_kwargs())

    def _key(self, key):
        import jax
        import jax.numpy as jnp

        return jax.random.wrap_key_data(jnp.asarray(np.asarray(key, dtype=np.uint32)))

    def _member_fn(self, config: NoiserConfig, name: str):
        """A module-level per-member function of the noiser's module (e.g. ``get_lora_update_params``)."""
        module = sys.modules[self._cls(config).__module__]
        fn = getattr(module, name, None)
        if fn is None:
            raise base.Unsupported(f"noiser {config.noiser!r} has no {name}")
        return fn

    def _population(self, population: Population):
        import jax.numpy as jnp

        return jnp.asarray(population.epochs), jnp.asarray(population.thread_ids)

    # ---- operations ----------------------------------------------------------------------
    def convert_fitnesses(self, config, raw):
        import jax.numpy as jnp

        frozen, nparams = self._init(config, {})
        return _out(self._cls(config).convert_fitnesses(frozen, nparams, jnp.asarray(raw)))

    def _draw(self, config, name, sigma_fn, key, shape, dtype, population):
        import jax
        import jax.numpy as jnp

        param = jnp.zeros(shape, _np_dtype(dtype))
        frozen, nparams = self._init(config, param)
        fn = partial(self._member_fn(config, name), frozen)
        sigma = sigma_fn(frozen, nparams)
        drawn = jax.vmap(fn, in_axes=(None, 0, None, None))(
            sigma, self._population(population), param, self._key(key))
        return tuple(_out(d) for d in drawn) if isinstance(drawn, tuple) else _out(drawn)

    def lora_factors(self, config, key, shape, dtype, population):
        import jax.numpy as jnp

        if config.noiser in ("open_es", "sparse", "noop"):
            raise base.Unsupported(f"noiser {config.noiser!r} has no low-rank factors")
        return self._draw(config, "get_lora_update_params",
                          lambda f, n: n["sigma"] / jnp.sqrt(f["rank"]), key, shape, dtype, population)

    def full_noise(self, config, key, shape, dtype, population):
        if config.noiser == "noop":
            raise base.Unsupported("noiser 'noop' draws no noise")
        return self._draw(config, "get_nonlora_update_params", lambda f, n: n["sigma"],
                          key, shape, dtype, population)

    def sparse_noise(self, config, key, shape, dtype, population):
        if config.noiser != "sparse":
            raise base.Unsupported("only the 'sparse' noiser draws sparse noise")
        return self._draw(config, "get_sparse_update_params", lambda f, n: n["sigma"],
                          key, shape, dtype, population)

    def _forward(self, method, config, param, key, population, x):
        import jax
        import jax.numpy as jnp

        p = jnp.asarray(param)
        frozen, nparams = self._init(config, p)
        fn = getattr(self._cls(config), method)
        k = self._key(key)
        xs = jnp.asarray(x)
        if population is None:
            return _out(fn(frozen, nparams, p, k, None, xs))
        def member(it, xm):
            return fn(frozen, nparams, p, k, it, xm)

        return _out(jax.vmap(member)(self._population(population), xs))

    def do_mm(self, config, param, key, population, x):
        return self._forward("do_mm", config, param, key, population, x)

    def do_Tmm(self, config, param, key, population, x):
        return self._forward("do_Tmm", config, param, key, population, x)

    def noisy_standard(self, config, param, key, population):
        import jax
        import jax.numpy as jnp

        p = jnp.asarray(param)
        frozen, nparams = self._init(config, p)
        cls = self._cls(config)
        k = self._key(key)
        if population is None:
            return _out(cls.get_noisy_standard(frozen, nparams, p, k, None))
        def member(it):
            return cls.get_noisy_standard(frozen, nparams, p, k, it)

        return _out(jax.vmap(member)(self._population(population)))

    def api_contract(self, config, params, keys, es_map, fitnesses, population, x):
        import jax.numpy as jnp

        jparams = trees.map_leaves(jnp.asarray, params)
        one = (int(population.epochs[0]), int(population.thread_ids[-1]))
        with _quiet():
            return describe(self._cls(config), lambda p: self._init(config, p), jparams,
                            trees.map_leaves(self._key, keys), trees.map_leaves(int, es_map), jnp.asarray(fitnesses),
                            self._population(population), one, jnp.asarray(x), _out,
                            lambda a, b: a is b or bool(jnp.array_equal(a, b)))

    def tree_keys(self, params, base_key, scan_map):
        import jax.numpy as jnp

        jparams = trees.map_leaves(jnp.asarray, params)
        smap = trees.map_leaves(tuple, scan_map)
        keys = self.api().common.simple_es_tree_key(jparams, self._key(base_key), smap)
        return trees.map_leaves(_out, keys)

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        import jax.numpy as jnp

        if noise is not None:
            raise base.Unsupported(f"{self.name} draws JAX noise itself; injected noise is not accepted")
        jparams = trees.map_leaves(jnp.asarray, params)
        jkeys = trees.map_leaves(self._key, keys)
        emap = trees.map_leaves(int, es_map)
        frozen, nparams = self._init(config, jparams)
        with _quiet():
            _, new = self._cls(config).do_updates(frozen, nparams, jparams, jkeys, jnp.asarray(fitnesses),
                                                  self._population(population), emap)
        return trees.map_leaves(_out, new)

    def optimizer_steps(self, solver, lr, params, grads):
        import jax.numpy as jnp
        import optax

        opt = getattr(optax, solver.name)(lr, **solver.library_kwargs(_np_dtype))
        p = trees.map_leaves(jnp.asarray, params)
        state = opt.init(p)
        out = []
        for g in grads:
            updates, state = opt.update(trees.map_leaves(jnp.asarray, g), state, p)
            p = optax.apply_updates(p, updates)
            out.append(trees.map_leaves(_out, p))
        return out

    def mlp_trajectory(self, spec):
        import optax

        api = self.api()
        with _quiet():
            run = api.run_mlp_example(
                api.noisers[spec.noiser], spec.num_epochs, model=api.common.MLP,
                es_tree_key_fn=api.common.simple_es_tree_key, sigma=spec.sigma, lr=spec.lr,
                num_envs=spec.num_envs, in_dim=spec.in_dim, hidden_dims=tuple(spec.hidden_dims),
                rank=spec.rank, solver=getattr(optax, spec.solver.name),
                solver_kwargs=spec.solver.library_kwargs(_np_dtype), seed=spec.seed,
                noiser_kwargs={"rank": spec.rank, "noise_reuse": spec.noise_reuse})
        params = [trees.map_leaves(_out, p) for p in [run.initial_params, *run.params]]
        return Trajectory(params=params, scores=np.stack([_out(s) for s in run.raw_scores]))

    def rl_policy(self, config, policy, key, tree_key, population, obs, actions, sample_keys):
        import jax
        import jax.numpy as jnp

        rl = self.api().rl
        if rl is None:
            raise base.Unsupported(f"{self.name} has no models.rl (install the rl extra: gymnax, distrax)")
        from gymnax.environments import spaces

        def space(desc):
            kind, size = desc
            return spaces.Discrete(size) if kind == "discrete" else spaces.Box(-1.0, 1.0, tuple(size))

        init = rl.ActorCriticMLP.rand_init(
            self._key(key), policy["n_embd"], space(policy["obs"]), space(policy["act"]), policy["n_layers"],
            policy["use_bias"], policy["activation"], policy["have_critic"], policy["dtype"])
        frozen_params, params = init.frozen_params, init.params
        keys = self.api().common.simple_es_tree_key(params, self._key(tree_key), init.scan_map)
        frozen, nparams = self._init(config, params)
        cls = self._cls(config)

        def member(it, x, a, k):
            out = rl.ActorCriticMLP.forward(cls, frozen, nparams, frozen_params, params, keys, it, x)
            pi, critic = out if policy["have_critic"] else (out, None)
            fields = {"log_prob": pi.log_prob(a), "sample": pi.sample(seed=k)}
            if policy["act"][0] == "discrete":
                fields["logits"] = pi.logits
            else:
                fields |= {"mean": pi.mean(), "std": pi.stddev()}
            return fields | ({"critic": critic} if critic is not None else {})

        data = (jnp.asarray(obs), jnp.asarray(actions),
                jax.random.wrap_key_data(jnp.asarray(np.asarray(sample_keys, dtype=np.uint32))))
        with _quiet():
            if population is None:
                outputs = jax.vmap(lambda x, a, k: member(None, x, a, k))(*data)
            else:
                outputs = jax.vmap(member)(self._population(population), *data)
        return {**{f"params/{p}": _out(v) for p, v in trees.items(params)},
                **{name: _out(v) for name, v in outputs.items()}}

    def rwkv7(self, config, model, checkpoint, tree_key, population, calls, fitnesses):
        return self._language_model("rwkv7", None, config, model, checkpoint, tree_key, population, calls,
                                    fitnesses)

    def qrwkv6(self, config, model, checkpoint, tree_key, population, calls, fitnesses):
        return self._language_model("qrwkv6", {"head_size": model["head_size"]}, config, model, checkpoint,
                                    tree_key, population, calls, fitnesses)

    def _language_model(self, module, model_config, config, model, checkpoint, tree_key, population, calls,
                        fitnesses):
        """:meth:`rwkv7` / :meth:`qrwkv6` on ``models.llm.<module>``; ``model_config`` is what its
        ``load_from_torch`` and ``default_state`` take as ``config``."""
        import jax
        import jax.numpy as jnp
        import torch

        llm = self.api().llm
        if llm is None:
            raise base.Unsupported(f"{self.name} has no models.llm")
        if not hasattr(llm, module):
            raise base.Unsupported(f"{self.name}'s models.llm has no {module} module")
        cls = getattr(getattr(llm, module), model["variant"])
        state_dict = {name: torch.from_numpy(np.array(array)) for name, array in checkpoint.items()}
        with _quiet():
            init = cls.load_from_torch(state_dict, model_config, _np_dtype(model["dtype"]))
        params = init.params
        keys = self.api().common.simple_es_tree_key(params, self._key(tree_key), init.scan_map)
        frozen, nparams = self._init(config, params)
        noiser = self._cls(config)
        outputs = {}
        with _quiet():
            state = cls.default_state(params, model_config)
            if population is not None:
                state = jnp.broadcast_to(state, (len(population.thread_ids), *state.shape))
            for index, call in enumerate(calls):
                new_starts = None if call["new_starts"] is None else jnp.asarray(call["new_starts"])

                # Jitted, as upstream's loops run it: eager dispatch of the recurrence takes minutes.
                @jax.jit
                def run(it, tokens, state, new_starts=new_starts, length=call["length"]):
                    def member(it, tokens, state):
                        return cls.forward(noiser, frozen, nparams, init.frozen_params, params, keys, it, tokens,
                                           state, length, new_starts)
                    return member(None, tokens, state) if it is None else jax.vmap(member)(it, tokens, state)

                it = None if population is None else self._population(population)
                logits, state = run(it, jnp.asarray(call["tokens"]), state)
                outputs |= {f"logits/{index}": _out(logits), f"state/{index}": _out(state)}

            @jax.jit
            def update(nparams, params, raw, iterinfo):
                shaped = noiser.convert_fitnesses(frozen, nparams, raw)
                return noiser.do_updates(frozen, nparams, params, keys, shaped, iterinfo, init.es_map)

            for epoch, raw in enumerate(fitnesses):
                iterinfo = (jnp.asarray(population.epochs) + epoch, jnp.asarray(population.thread_ids))
                nparams, params = update(nparams, params, jnp.asarray(raw), iterinfo)
                outputs |= {f"epoch{epoch}/{path}": _out(v) for path, v in trees.items(params)}
        return outputs

    def _llm_loop(self):
        api = self.api()
        if api.llm_loop is None or api.bandits is None or api.llm is None:
            raise base.Unsupported(f"{self.name} has no LLM evolution loop as a library")
        return api

    def llm_sampling(self, keys, logits, dtype, temperature):
        import jax
        import jax.numpy as jnp

        loop = self._llm_loop().llm_loop
        sample = jax.jit(jax.vmap(lambda key, row: loop.sample_token(key, row, temperature)))
        tokens = sample(jax.random.wrap_key_data(jnp.asarray(keys, dtype=jnp.uint32)),
                        jnp.asarray(logits, dtype=_np_dtype(dtype)))
        return {"tokens": _out(tokens)}

    def llm_evolution(self, config, model, checkpoint, task, epochs):
        import torch

        api = self._llm_loop()
        cls = getattr(api.llm.rwkv7, model["variant"])
        state_dict = {name: torch.from_numpy(np.array(array)) for name, array in checkpoint.items()}
        with _quiet():
            init = cls.load_from_torch(state_dict, None, _np_dtype(model["dtype"]))
            settings = api.llm_loop.EvolutionConfig(**config)
            evolution = api.llm_loop.Evolution(cls, init, api.bandits.all_tasks[task](None, None,
                                                                                      settings.generation_length),
                                               settings)
            noiser_params, params = evolution.noiser_params, evolution.params
            if not epochs:
                _, prompts = evolution.epoch_prompts(0)
                tokens = evolution.generate_batch(noiser_params, params, prompts, evolution.thread_ids, 0)
                return {"tokens/epoch0": _out(tokens)}
            outputs = {}
            for epoch in range(epochs):
                result = evolution.single_epoch(noiser_params, params, epoch)
                noiser_params, params = result.noiser_params, result.params
                outputs |= {f"tokens/epoch{epoch}": _out(result.tokens), f"fitness/epoch{epoch}": _out(result.fitness)}
                outputs |= {f"params/epoch{epoch}/{path}": _out(v) for path, v in trees.items(params)}
        return outputs

    def llm_task_fitness(self, task, indices, tokens):
        import jax.numpy as jnp

        api = self._llm_loop()
        bandit = api.bandits.all_tasks[task](None, None, tokens.shape[1])
        return {"prompts": _out(bandit.get_input(jnp.asarray(indices))),
                "fitness": _out(bandit.get_batch_fitness(jnp.asarray(indices), jnp.asarray(tokens)))}


def library_versions() -> dict:
    """Versions of the JAX stack (for reports and vector headers)."""
    import jax
    import jaxlib
    import optax

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__,
            "numpy": np.__version__}


def jax_device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', d.platform)}"
