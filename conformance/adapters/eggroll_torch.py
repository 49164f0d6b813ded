"""Backend ``eggroll_torch`` (and ``eggroll_torch-cuda``): our PyTorch port's functional layer.

``eggroll_torch.noiser`` / ``eggroll_torch.models.common`` mirror upstream name for name and take
a whole population at once (``iterinfo = (epochs, thread_ids)`` as 1-D tensors), so every
operation is one call; nothing here imports JAX.

Every operation on a ``NoiserConfig`` calls the class :meth:`EggrollTorchAdapter.noiser_cls`
returns, and every draw goes through its noise seam (``full_noise``, ``lora_noise``,
``sparse_noise``), so a subclass of the adapter that returns a noiser subclass changes the noise
of every operation alike; the deliberately broken variants (``tests/conformance/broken``) do that. Injected noise
(``do_updates(noise=...)``) is such a subclass too, built per call: its ``lora_noise`` /
``full_noise`` return the given arrays of the leaf whose key they are asked about, and the
port's own update algebra (fitness weighting, einsum, 1/N, sqrt(N), solver) runs on them.
"""
from __future__ import annotations

import numpy as np

from .. import trees
from ..environment import git_commit
from ..spec import NOISERS, LeafNoise, Trajectory
from ..tolerances import to_numpy
from . import base
from ._api_contract import describe


def _torch():
    import torch

    return torch


def torch_dtype(name: str):
    torch = _torch()
    return {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[name]


class EggrollTorchAdapter(base.Adapter):
    """The functional torch layer on ``device`` (``"cpu"`` or ``"cuda"``)."""

    capabilities = frozenset(
        {base.CONVERT_FITNESSES, base.JAX_RNG, base.NOISE, base.SPARSE_NOISE, base.FORWARD, base.TREE_KEYS,
         base.SCAN_MAP, base.UPDATES, base.INJECT_NOISE, base.BATCHED_UPDATE, base.OPTIMIZER, base.TRAJECTORY,
         base.API, base.RL_POLICY, base.RWKV7, base.QRWKV6, base.LLM_LOOP}
        | {base.noiser_capability(n) for n in NOISERS}
        | {base.dtype_capability(d) for d in ("float32", "bfloat16", "float16")}
    )

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.name = "eggroll_torch" if device == "cpu" else f"eggroll_torch-{device}"

    def info(self) -> base.BackendInfo:
        torch = _torch()
        device = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        return base.BackendInfo(self.name, f"eggroll_torch @ {git_commit()}", f"{self.device}:{device}",
                                {"torch": torch.__version__, "numpy": np.__version__})

    # ---- conversions ---------------------------------------------------------------------
    def tensor(self, array, dtype: str | None = None):
        """numpy (bfloat16 via float32) -> torch on this adapter's device."""
        torch = _torch()
        arr = np.asarray(array)
        name = dtype or ("bfloat16" if arr.dtype.name == "bfloat16" else None)
        if arr.dtype.name == "bfloat16":
            arr = arr.astype(np.float32)
        t = torch.as_tensor(np.array(arr, order="C", copy=True), device=self.device)
        return t.to(torch_dtype(name)) if name else t

    def key(self, words):
        from eggroll_torch import random

        return random.wrap_key_data(np.asarray(words, dtype=np.uint32), device=self.device)

    def population(self, population):
        torch = _torch()
        return (torch.as_tensor(population.epochs, device=self.device),
                torch.as_tensor(population.thread_ids, device=self.device))

    @staticmethod
    def out(value) -> np.ndarray:
        """A host numpy copy of a torch result in its own dtype.

        A copy, never a view: the trainer adapter's parameters are updated in place after
        being read.

        Args:
            value: a torch tensor, or anything numpy takes.

        Returns:
            np.ndarray: the values in their dtype; bfloat16 as ``ml_dtypes.bfloat16``, uint32
            as uint32.
        """
        return to_numpy(value)

    # ---- helpers -------------------------------------------------------------------------
    def noiser_cls(self, config):
        """The noiser class every operation on ``config`` calls."""
        from eggroll_torch.noiser import all_noisers

        return all_noisers[config.noiser]

    def solver(self, spec):
        from eggroll_torch import optim

        if spec is None:
            return {}
        return {"solver": getattr(optim, spec.name), "solver_kwargs": spec.library_kwargs(torch_dtype)}

    def init(self, config, params):
        return self.noiser_cls(config).init_noiser(params, config.sigma, config.lr, **self.solver(config.solver),
                                                   **config.init_kwargs())

    # ---- operations ----------------------------------------------------------------------
    def convert_fitnesses(self, config, raw):
        frozen, nparams = self.init(config, {})
        return self.out(self.noiser_cls(config).convert_fitnesses(frozen, nparams, self.tensor(raw)))

    def lora_factors(self, config, key, shape, dtype, population):
        from eggroll_torch.noiser._member import lora_sigma

        if config.noiser in ("open_es", "sparse", "noop"):
            raise base.Unsupported(f"noiser {config.noiser!r} has no low-rank factors")
        param = _torch().zeros(shape, dtype=torch_dtype(dtype), device=self.device)
        frozen, nparams = self.init(config, param)
        sigma = lora_sigma(nparams["sigma"], frozen["rank"], param.dtype, param.device)
        a, b = self.noiser_cls(config).lora_noise(frozen, sigma, self.population(population), param, self.key(key))
        return self.out(a), self.out(b)

    def full_noise(self, config, key, shape, dtype, population):
        if config.noiser == "noop":
            raise base.Unsupported("noiser 'noop' draws no noise")
        param = _torch().zeros(shape, dtype=torch_dtype(dtype), device=self.device)
        frozen, nparams = self.init(config, param)
        noise = self.noiser_cls(config).full_noise(frozen, nparams["sigma"], self.population(population), param,
                                                   self.key(key))
        return self.out(noise)

    def sparse_noise(self, config, key, shape, dtype, population):
        if config.noiser != "sparse":
            raise base.Unsupported("only the 'sparse' noiser draws sparse noise")
        param = _torch().zeros(shape, dtype=torch_dtype(dtype), device=self.device)
        frozen, nparams = self.init(config, param)
        drawn = self.noiser_cls(config).sparse_noise(frozen, nparams["sigma"], self.population(population), param,
                                                     self.key(key))
        return tuple(self.out(v) for v in drawn)

    def _forward(self, method, config, param, key, population, x):
        p = self.tensor(param)
        frozen, nparams = self.init(config, p)
        it = None if population is None else self.population(population)
        fn = getattr(self.noiser_cls(config), method)
        return self.out(fn(frozen, nparams, p, self.key(key), it, self.tensor(x)))

    def do_mm(self, config, param, key, population, x):
        return self._forward("do_mm", config, param, key, population, x)

    def do_Tmm(self, config, param, key, population, x):
        return self._forward("do_Tmm", config, param, key, population, x)

    def noisy_standard(self, config, param, key, population):
        p = self.tensor(param)
        frozen, nparams = self.init(config, p)
        it = None if population is None else self.population(population)
        out = self.out(self.noiser_cls(config).get_noisy_standard(frozen, nparams, p, self.key(key), it))
        if population is not None and out.shape == tuple(param.shape):
            # An unperturbed param comes back without the member axis; the protocol has one.
            out = np.broadcast_to(out, (population.size, *out.shape)).copy()
        return out

    def api_contract(self, config, params, keys, es_map, fitnesses, population, x):
        torch = _torch()

        tparams = trees.map_leaves(self.tensor, params)
        one = (int(population.epochs[0]), int(population.thread_ids[-1]))
        return describe(self.noiser_cls(config), lambda p: self.init(config, p), tparams,
                        trees.map_leaves(self.key, keys), trees.map_leaves(int, es_map), self.tensor(fitnesses),
                        self.population(population), one, self.tensor(x), self.out,
                        lambda a, b: a is b or bool(torch.equal(a, b)))

    def tree_keys(self, params, base_key, scan_map):
        from eggroll_torch.models import common

        tparams = trees.map_leaves(self.tensor, params)
        keys = common.simple_es_tree_key(tparams, self.key(base_key), trees.map_leaves(tuple, scan_map))
        return trees.map_leaves(self.out, keys)

    def rl_policy(self, config, policy, key, tree_key, population, obs, actions, sample_keys):
        from eggroll_torch.models import common, rl

        def space(desc):
            kind, size = desc
            return rl.Discrete(size) if kind == "discrete" else rl.Box(-1.0, 1.0, tuple(size))

        init = rl.ActorCriticMLP.rand_init(
            self.key(key), policy["n_embd"], space(policy["obs"]), space(policy["act"]), policy["n_layers"],
            policy["use_bias"], policy["activation"], policy["have_critic"], policy["dtype"])
        keys = common.simple_es_tree_key(init.params, self.key(tree_key), init.scan_map)
        frozen, nparams = self.init(config, init.params)
        it = None if population is None else self.population(population)
        x = self.tensor(obs)
        out = rl.ActorCriticMLP.forward(self.noiser_cls(config), frozen, nparams, init.frozen_params, init.params,
                                        keys, it, x.long() if policy["obs"][0] == "discrete" else x)
        pi, critic = out if policy["have_critic"] else (out, None)
        outputs = {"log_prob": pi.log_prob(self.tensor(actions)), "sample": rl.sample(pi, self.key(sample_keys))}
        if policy["act"][0] == "discrete":
            outputs["logits"] = pi.logits
        else:
            outputs |= {"mean": pi.mean, "std": pi.stddev.expand_as(pi.mean)}
        if critic is not None:
            outputs["critic"] = critic
        return {**{f"params/{p}": self.out(v) for p, v in trees.items(init.params)},
                **{name: self.out(v) for name, v in outputs.items()}}

    def rwkv7(self, config, model, checkpoint, tree_key, population, calls, fitnesses):
        from eggroll_torch.models.llm import rwkv7

        return self._language_model(rwkv7, None, config, model, checkpoint, tree_key, population, calls, fitnesses)

    def qrwkv6(self, config, model, checkpoint, tree_key, population, calls, fitnesses):
        from eggroll_torch.models.llm import qrwkv6

        return self._language_model(qrwkv6, {"head_size": model["head_size"]}, config, model, checkpoint, tree_key,
                                    population, calls, fitnesses)

    def _language_model(self, module, model_config, config, model, checkpoint, tree_key, population, calls,
                        fitnesses):
        """:meth:`rwkv7` / :meth:`qrwkv6` on ``module``; ``model_config`` is what its
        ``load_from_torch`` and ``default_state`` take as ``config``. A population runs as one call."""
        from eggroll_torch.models import common

        torch = _torch()
        cls = getattr(module, model["variant"])
        state_dict = {name: torch.from_numpy(np.array(array)) for name, array in checkpoint.items()}
        init = cls.load_from_torch(state_dict, model_config, getattr(torch, model["dtype"]))
        params = trees.map_leaves(lambda t: t.to(self.device), init.params)
        keys = common.simple_es_tree_key(params, self.key(tree_key), init.scan_map)
        frozen, nparams = self.init(config, params)
        noiser = self.noiser_cls(config)
        it = None if population is None else self.population(population)
        state = cls.default_state(params, model_config)
        if it is not None:
            state = state.expand(len(population.thread_ids), *state.shape)
        outputs = {}
        for index, call in enumerate(calls):
            new_starts = None if call["new_starts"] is None else torch.as_tensor(call["new_starts"], device=self.device)
            logits, state = cls.forward(noiser, frozen, nparams, init.frozen_params, params, keys, it,
                                        torch.as_tensor(call["tokens"], device=self.device), state, call["length"],
                                        new_starts)
            outputs |= {f"logits/{index}": self.out(logits), f"state/{index}": self.out(state)}
        for epoch, raw in enumerate(fitnesses):
            iterinfo = (it[0] + epoch, it[1])
            shaped = noiser.convert_fitnesses(frozen, nparams, self.tensor(raw))
            nparams, params = noiser.do_updates(frozen, nparams, params, keys, shaped, iterinfo, init.es_map)
            outputs |= {f"epoch{epoch}/{path}": self.out(v) for path, v in trees.items(params)}
        return outputs

    def llm_sampling(self, keys, logits, dtype, temperature):
        from eggroll_torch.llm import sample_token

        torch = _torch()
        rows = torch.as_tensor(np.asarray(logits, dtype=np.float32), device=self.device).to(torch_dtype(dtype))
        return {"tokens": self.out(sample_token(self.key(keys), rows, temperature))}

    def llm_evolution(self, config, model, checkpoint, task, epochs):
        from eggroll_torch import llm
        from eggroll_torch.environments.llm_bandits import all_tasks
        from eggroll_torch.models.llm import rwkv7

        torch = _torch()
        cls = getattr(rwkv7, model["variant"])
        state_dict = {name: torch.from_numpy(np.array(array)) for name, array in checkpoint.items()}
        init = cls.load_from_torch(state_dict, None, getattr(torch, model["dtype"]))
        init = init._replace(params=trees.map_leaves(lambda t: t.to(self.device), init.params))
        settings = llm.EvolutionConfig(**config)
        evolution = llm.Evolution(cls, init, all_tasks[task](None, None, settings.generation_length), settings)
        noiser_params, params = evolution.noiser_params, evolution.params
        if not epochs:
            _, prompts = evolution.epoch_prompts(0)
            return {"tokens/epoch0": self.out(evolution.generate(noiser_params, params, prompts, evolution.thread_ids,
                                                                 0))}
        outputs = {}
        for epoch in range(epochs):
            result = evolution.single_epoch(noiser_params, params, epoch)
            noiser_params, params = result.noiser_params, result.params
            outputs |= {f"tokens/epoch{epoch}": self.out(result.tokens),
                        f"fitness/epoch{epoch}": self.out(result.fitness)}
            outputs |= {f"params/epoch{epoch}/{path}": self.out(v) for path, v in trees.items(params)}
        return outputs

    def llm_task_fitness(self, task, indices, tokens):
        from eggroll_torch.environments.llm_bandits import all_tasks

        torch = _torch()
        bandit = all_tasks[task](None, None, tokens.shape[1])
        index = torch.as_tensor(np.asarray(indices))
        return {"prompts": self.out(bandit.get_input(index)),
                "fitness": self.out(bandit.get_batch_fitness(index, torch.as_tensor(np.asarray(tokens))))}

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        tparams = trees.map_leaves(self.tensor, params)
        tkeys = trees.map_leaves(self.key, keys)
        emap = trees.map_leaves(int, es_map)
        frozen, nparams = self.init(config, tparams)
        _, new = self.update_noiser(config, noise, keys).do_updates(
            frozen, nparams, tparams, tkeys, self.tensor(fitnesses), self.population(population), emap)
        return trees.map_leaves(self.out, new)

    def update_noiser(self, config, noise: dict[str, LeafNoise] | None, keys: dict):
        """The noiser class ``do_updates`` calls: :meth:`noiser_cls`, or with ``noise`` (per leaf
        path) a subclass of it drawing that noise (:meth:`injecting`)."""
        noiser = self.noiser_cls(config)
        return noiser if noise is None else self.injecting(noiser, noise, keys)

    def injecting(self, noiser, noise: dict[str, LeafNoise], keys: dict):
        """A subclass of ``noiser`` whose ``lora_noise`` / ``full_noise`` return ``noise``'s arrays
        for the leaf whose key (per path in ``keys``) they are asked about.

        A leaf without injected noise (or a stacked leaf, whose key has several rows) keeps the
        noiser's own draw.
        """
        by_key = {}
        for path, words in trees.items(keys):
            leaf = noise.get(path)
            if leaf is not None and leaf.kind != "none":
                by_key[tuple(int(w) for w in np.asarray(words).ravel())] = leaf
        tensor = self.tensor

        def lookup(kind, param, key):
            leaf = by_key.get(tuple(key.reshape(-1).tolist())) if key.ndim == 1 else None
            if leaf is None:
                return None
            if leaf.kind != kind:
                raise base.Unsupported(f"injected {leaf.kind} noise where the noiser draws {kind} noise")
            return tuple(tensor(a).to(param.dtype) for a in leaf.arrays)

        class Injected(noiser):
            @classmethod
            def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                arrays = lookup("lora", param, key)
                if arrays is None:
                    return super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
                return arrays

            @classmethod
            def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                arrays = lookup("full", param, key)
                if arrays is None:
                    return super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
                return arrays[0]

        return Injected

    def optimizer_steps(self, solver, lr, params, grads):
        from eggroll_torch import optim

        opt = getattr(optim, solver.name)(lr, **solver.library_kwargs(torch_dtype))
        p = trees.map_leaves(self.tensor, params)
        state = opt.init(p)
        out = []
        for g in grads:
            updates, state = opt.update(trees.map_leaves(self.tensor, g), state, p)
            p = optim.apply_updates(p, updates)
            out.append(trees.map_leaves(self.out, p))
        return out

    def mlp_trajectory(self, spec):
        from eggroll_torch import optim
        from eggroll_torch.examples.mlp_e2e import run_mlp_example
        from eggroll_torch.noiser import all_noisers

        run = run_mlp_example(all_noisers[spec.noiser], spec.num_epochs, sigma=spec.sigma, lr=spec.lr,
                              num_envs=spec.num_envs, in_dim=spec.in_dim, hidden_dims=tuple(spec.hidden_dims),
                              rank=spec.rank, solver=getattr(optim, spec.solver.name),
                              solver_kwargs=spec.solver.library_kwargs(torch_dtype),
                              noiser_kwargs={"rank": spec.rank, "noise_reuse": spec.noise_reuse}, seed=spec.seed,
                              device=self.device)
        params = [trees.map_leaves(self.out, p) for p in [run.initial_params, *run.params]]
        return Trajectory(params=params, scores=np.stack([self.out(s) for s in run.raw_scores]))
