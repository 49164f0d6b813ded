"""Adapter for the PyPI port ``eggroll-trainer`` (``EGGROLLTrainer``), written against 0.1.0.

The port mirrors upstream's structure closely, so most operations call the method ``step`` itself
uses:

* ``convert_fitnesses``: ``EGGROLLTrainer._convert_fitnesses`` (global and per-group shaping).
* ``lora_factors`` / ``full_noise``: ``_get_lora_params(param, thread_id, epoch)`` (``A`` with sign
  and ``sigma / sqrt(rank)``, and ``B``, exactly the protocol's factors) and
  ``_get_full_rank_params``. Their ``torch.Generator`` draws are replaced by the reference's (see
  ``_reference_draws``): the port seeds with ``true_epoch * 1_000_000 + true_thread``, and that
  (epoch, thread) gets ``normal(fold_in(fold_in(leaf_key, true_epoch), true_thread))``. How the
  port derives ``true_epoch``, ``true_thread`` and the sign from ``noise_reuse`` is its own code.
* ``do_mm`` / ``noisy_standard``: ``_apply_perturbations(thread_id, epoch)``, the perturbed
  parameters ``step`` evaluates, pushed through ``torch.nn.Linear`` for ``do_mm``.
* ``do_updates``: the public ``step()`` with a fitness function that returns the given scores in
  member order, ``_convert_fitnesses`` bypassed (``do_updates`` receives shaped fitnesses) and
  ``_get_lora_params`` / ``_get_full_rank_params`` answering with the reference noise of the
  member (the port's thread ``k`` is the harness's member ``k``). EMB_PARAM and EXCLUDED leaves are
  marked ``requires_grad=False``, which is how the port is told to leave a parameter alone.

Unsupported: solvers other than plain SGD, ``do_Tmm``, full-rank noise of a 2-D leaf (every 2-D
parameter is low-rank in the port), per-leaf JAX keys (own RNG: one seed per member shared by
every parameter), ``optimizer_steps`` and the end-to-end trajectory (AdamW).
"""
from __future__ import annotations

import importlib
from importlib import metadata

import numpy as np
import torch
from torch import nn

from ... import trees
from ...spec import EMB_PARAM, EXCLUDED, NoiserConfig, Population
from .. import base
from ._reference_draws import ReferenceDraws, routed_draws
from ._torch_trees import (module_from_tree, one_param_module, to_numpy, to_torch, torch_dtype, torch_name,
                           tree_from_module)

PACKAGE = "eggroll-trainer"
_EPOCH_STRIDE = 1_000_000


def _port():
    return importlib.import_module("eggroll_trainer.eggroll")


def _check_config(config: NoiserConfig) -> None:
    solver = config.solver
    if solver is not None and (solver.name != "sgd" or solver.kwargs):
        raise base.Unsupported("eggroll-trainer's only update rule is plain SGD (param += lr * sqrt(N) * estimate)")


def _unscored(_model) -> float:
    raise RuntimeError("the adapter evaluates no fitness outside do_updates")


def _trainer(config: NoiserConfig, module: nn.Module, population_size: int, fitness_fn=_unscored):
    _check_config(config)
    return _port().EGGROLLTrainer(
        module.parameters(), module, fitness_fn, population_size=population_size, learning_rate=config.lr,
        sigma=config.sigma, rank=config.rank, noise_reuse=config.noise_reuse, group_size=config.group_size,
        freeze_nonlora=config.freeze_nonlora)


def _resolver(draws: ReferenceDraws):
    def resolve(seed, size, dtype):
        epoch, thread = divmod(seed, _EPOCH_STRIDE)
        return draws.draw(epoch, thread, size, dtype)

    return resolve


class EggrollTrainerAdapter(base.Adapter):
    """``eggroll-trainer`` behind the harness protocol (own RNG; reference draws routed in)."""

    # bfloat16 results come back as their exact float32 values (_torch_trees.to_numpy).
    widens_bfloat16 = True
    name = "eggroll-trainer"
    routes_reference_draws = True
    capabilities = frozenset({base.CONVERT_FITNESSES, base.NOISE, base.FORWARD, base.UPDATES, base.INJECT_NOISE,
                              base.noiser_capability("eggroll"), base.dtype_capability("float32"),
                              base.dtype_capability("bfloat16")})

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(
            self.name, metadata.version(PACKAGE), "cpu", {"torch": torch.__version__},
            "one torch.Generator reseeded with true_epoch * 1e6 + true_thread for each draw, the same seed "
            "for every parameter; the reference's normal draws are routed into it")

    def convert_fitnesses(self, config, raw):
        raw_t = to_torch(raw)
        trainer = _trainer(config, one_param_module(torch.zeros(1)), raw_t.shape[0])
        return to_numpy(trainer._convert_fitnesses(raw_t))

    # ---- noise: the port's methods, reference draws routed into its generator ---------------
    def _per_member(self, config, param: torch.Tensor, key, population: Population, method: str) -> list:
        module = one_param_module(param)
        port = _port()
        pairs = int(population.thread_ids.max()) + 1
        with routed_draws(port, _resolver(ReferenceDraws(key, pairs))):
            trainer = _trainer(config, module, population.size)
            fn = getattr(trainer, method)
            return [fn(module.w, int(t), int(e)) for e, t in zip(population.epochs, population.thread_ids)]

    def lora_factors(self, config, key, shape, dtype, population):
        param = torch.zeros(shape, dtype=torch_dtype(dtype))
        pairs = self._per_member(config, param, key, population, "_get_lora_params")
        return to_numpy(torch.stack([a for a, _ in pairs])), to_numpy(torch.stack([b for _, b in pairs]))

    def full_noise(self, config, key, shape, dtype, population):
        if len(shape) == 2:
            raise base.Unsupported("eggroll-trainer perturbs every 2-D parameter with low-rank noise; "
                                   "it has no full-rank noise for a 2-D leaf")
        param = torch.zeros(shape, dtype=torch_dtype(dtype))
        return to_numpy(torch.stack(self._per_member(config, param, key, population, "_get_full_rank_params")))

    def _perturbed(self, config, param: torch.Tensor, key, population: Population) -> torch.Tensor:
        """``(N, *shape)``: the parameter each member is evaluated with (``_apply_perturbations``)."""
        module = one_param_module(param)
        port = _port()
        pairs = int(population.thread_ids.max()) + 1
        with routed_draws(port, _resolver(ReferenceDraws(key, pairs))), torch.no_grad():
            trainer = _trainer(config, module, population.size)
            return torch.stack([trainer._apply_perturbations(int(t), int(e))["w"]
                                for e, t in zip(population.epochs, population.thread_ids)])

    def do_mm(self, config, param, key, population, x):
        p, xs = to_torch(param), to_torch(x)
        if population is None:
            with torch.no_grad():
                return to_numpy(xs @ p.T)
        weights = self._perturbed(config, p, key, population)
        linear = nn.Linear(p.shape[1], p.shape[0], bias=False, dtype=p.dtype)
        with torch.no_grad():
            ys = [torch.func.functional_call(linear, {"weight": w}, (xn,)) for w, xn in zip(weights, xs)]
        return to_numpy(torch.stack(ys))

    def do_Tmm(self, config, param, key, population, x):
        raise base.Unsupported("eggroll-trainer has no transposed matmul; its forward is the user's module")

    def noisy_standard(self, config, param, key, population):
        p = to_torch(param)
        if population is None:
            return to_numpy(p)
        if p.ndim == 2:
            raise base.Unsupported("eggroll-trainer perturbs every 2-D parameter with low-rank noise; "
                                   "it has no full-rank noise for a 2-D leaf")
        return to_numpy(self._perturbed(config, p, key, population))

    # ---- the update: step() on the reference's noise ---------------------------------------
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if noise is None:
            raise base.Unsupported("eggroll-trainer draws its own noise; its update is checked on injected noise")
        module = module_from_tree(params)
        named = dict(module.named_parameters())
        for path, leaf in noise.items():
            if leaf.kind != "none" and (leaf.kind == "lora") != (named[torch_name(path)].ndim == 2):
                raise base.Unsupported(f"leaf {path!r} has {leaf.kind} noise, but eggroll-trainer picks low-rank "
                                       "noise by ndim == 2 alone")
        for path, cls in trees.items(es_map):
            if cls in (EMB_PARAM, EXCLUDED):
                named[torch_name(path)].requires_grad_(False)
        scores = iter(np.asarray(fitnesses, np.float32).tolist())
        trainer = _trainer(config, module, population.size, lambda _model: next(scores))
        by_param = {id(named[torch_name(path)]): leaf for path, leaf in noise.items()}

        # The port holds noise in the parameter's dtype (golden vectors may carry it wider).
        def lora(param, thread_id, epoch):
            a, b = by_param[id(param)].arrays
            return to_torch(a[thread_id]).to(param.dtype), to_torch(b[thread_id]).to(param.dtype)

        def full(param, thread_id, epoch):
            leaf = by_param[id(param)]
            if leaf.kind == "none":
                return torch.zeros_like(param)
            return to_torch(leaf.arrays[0][thread_id]).to(param.dtype)

        trainer._get_lora_params = lora
        trainer._get_full_rank_params = full
        trainer._convert_fitnesses = lambda shaped: shaped
        trainer.step()
        return tree_from_module(module, params)
