"""Adapter for the PyPI port ``torcheggroll`` (``TorchEggrollES``), written against 0.2.0.

What the port exposes and how each operation reaches it:

* ``convert_fitnesses``: the port shapes fitnesses inside ``apply_fitness_scores`` and has no
  function returning them. The adapter runs ``prepare_population`` / ``apply_fitness_scores`` on
  a float64 vector parameter whose injected noise is the identity matrix, so the update IS the
  shaped fitness times ``sqrt(N) / N``, read back exactly. No group normalization exists:
  ``group_size > 0`` is unsupported.
* Noise (``lora_factors``, ``full_noise``, ``do_mm``, ``noisy_standard``): the port's own code
  runs (``prepare_population``, the async API ``step`` shares); its ``torch.Generator`` draws are
  replaced by the reference's (see ``_reference_draws``). Its seed ``hash((epoch, i, index))``
  names member pair ``i`` of epoch ``epoch`` and parameter ``index``; that pair gets the draw
  ``normal(fold_in(fold_in(leaf_key, epoch), i))``. The port only materialises ``A @ B.T``;
  the factors are read at that product (a tensor subclass records the two slices and the scale),
  and each member's sign from whether its noise is the product or its negation.
  A member's thread id is its row in the port's population, which has ``max(thread_id) + 1``
  members (rounded up to even, as antithetic sampling requires).
* ``do_updates``: ``_generate_all_noise`` is replaced by the reference noise (``A @ B.T`` per
  member for matrices) and ``apply_fitness_scores`` takes the step with
  ``normalize_fitness=False``, because ``do_updates`` receives fitnesses that are already shaped;
  the port still subtracts their mean, which is zero up to rounding for shaped fitnesses.

Not expressible, so unsupported: ``noise_reuse`` (the port redraws every epoch whatever is asked,
so its noise is checked as it is), ``group_size``, every solver but plain SGD, ``do_Tmm``,
full-rank noise of a 2-D leaf (the port perturbs every 2-D parameter low-rank), per-leaf JAX keys
(own RNG), ``optimizer_steps`` and the end-to-end trajectory (AdamW).
"""
from __future__ import annotations

import importlib
import math
from importlib import metadata

import numpy as np
import torch
from torch import nn

from ... import trees
from ...spec import MM_PARAM, PARAM, NoiserConfig, Population
from .. import base
from ._reference_draws import ReferenceDraws, routed_draws
from ._torch_trees import (module_from_tree, one_param_module, to_numpy, to_torch, torch_dtype, torch_name,
                           tree_from_module)

PACKAGE = "torcheggroll"
_SEED_MASK = 0x7FFFFFFF


def _port():
    return importlib.import_module("torcheggroll.es")


def _check_config(config: NoiserConfig) -> None:
    if config.group_size:
        raise base.Unsupported("torcheggroll has no group normalization (group_size)")
    solver = config.solver
    if solver is not None and (solver.name != "sgd" or solver.kwargs):
        raise base.Unsupported("torcheggroll's only update rule is plain SGD (param += lr * estimate)")


def _port_size(population: Population) -> int:
    """Members the port must generate so that row ``t`` exists for every thread id ``t``."""
    n = int(population.thread_ids.max()) + 1
    return max(2, n + n % 2)


class _ProductTap(torch.Tensor):
    """A reference draw that records what the port builds from it: ``left @ right`` and the
    scalar the product is multiplied by. ``records`` is bound per probe (see :func:`_tap_class`)."""

    records: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        name = getattr(func, "__name__", "")
        if name in ("matmul", "__matmul__") and cls.records:
            cls.records[-1].update(left=_plain(args[0]), right=_plain(args[1]), product=out)
        elif name in ("mul", "__mul__") and cls.records and cls.records[-1].get("product") is args[0]:
            cls.records[-1].update(scale=args[1], out=_plain(out))
        return out


def _tap_class(records: list):
    return type("_BoundProductTap", (_ProductTap,), {"records": records})


def _plain(t):
    return t.as_subclass(torch.Tensor).detach().clone() if isinstance(t, torch.Tensor) else t


class TorchEggrollAdapter(base.Adapter):
    """``torcheggroll`` behind the harness protocol (own RNG; reference draws routed in)."""

    # bfloat16 results come back as their exact float32 values (_torch_trees.to_numpy).
    widens_bfloat16 = True
    name = "torcheggroll"
    routes_reference_draws = True
    capabilities = frozenset({base.CONVERT_FITNESSES, base.NOISE, base.FORWARD, base.UPDATES, base.INJECT_NOISE,
                              base.noiser_capability("eggroll"), base.dtype_capability("float32"),
                              base.dtype_capability("bfloat16")})

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(
            self.name, metadata.version(PACKAGE), "cpu", {"torch": torch.__version__},
            "a torch.Generator per member pair and parameter, seeded with hash((epoch, pair, param index)); "
            "the reference's normal draws are routed into it, so every other noise behaviour is the port's own")

    # ---- fitness shaping -----------------------------------------------------------------
    def convert_fitnesses(self, config, raw):
        _check_config(config)
        raw_t = to_torch(raw)
        n = raw_t.shape[0]
        model = one_param_module(torch.zeros(n, dtype=torch.float64))
        es = _port().TorchEggrollES(model, pop_size=n, sigma=1.0, lr=1.0, antithetic=False, normalize_fitness=True)
        es._generate_all_noise = lambda: {"w": torch.eye(n, dtype=torch.float64)}
        es.prepare_population()
        es.apply_fitness_scores(raw_t)
        return to_numpy((model.w.detach() * math.sqrt(n)).to(raw_t.dtype))

    # ---- noise through the port's own generator, reference draws routed in ----------------
    def _member_params(self, config, module: nn.Module, leaf_keys: dict, population: Population,
                       param_filter=None) -> tuple[dict, list]:
        """``{name: (N, *shape)}``, each member's parameters as ``prepare_population`` builds them,
        and the records of every low-rank draw (slices, scale and scaled product) in draw order."""
        _check_config(config)
        port = _port()
        size = _port_size(population)
        es = port.TorchEggrollES(module, pop_size=size, sigma=config.sigma, lr=config.lr, rank=config.rank,
                                 param_filter=param_filter)
        draws = {idx: ReferenceDraws(leaf_keys[name], size // 2) for idx, name in enumerate(es.param_names)}
        records: list = []
        tap = _tap_class(records)
        rows: dict[str, list] = {name: [None] * population.size for name in dict(module.named_parameters())}
        for epoch in np.unique(population.epochs):
            table = self._seed_table(int(epoch), size // 2, len(es.param_names))

            def resolve(seed, shape, dtype, table=table):
                e, pair, idx = table[seed]
                records.append({"pair": pair})
                return draws[idx].draw(e, pair, shape, dtype).as_subclass(tap)

            es.epoch = int(epoch)
            with routed_draws(port, resolve):
                es.prepare_population()
                stacked = {k: _plain(v) for k, v in es.get_stacked_params().items()}
            for n in np.nonzero(population.epochs == epoch)[0]:
                for name in rows:
                    rows[name][n] = stacked[name][int(population.thread_ids[n])]
        return {name: torch.stack(v) for name, v in rows.items()}, records

    @staticmethod
    def _seed_table(epoch: int, pairs: int, n_params: int) -> dict:
        """``{seed: (epoch, pair, param index)}`` for every seed the port makes at ``epoch``."""
        table = {}
        for idx in range(n_params):
            for i in range(pairs):
                seed = hash((epoch, i, idx)) & _SEED_MASK
                if seed in table:
                    raise RuntimeError(f"two torcheggroll seeds collide at epoch {epoch}; "
                                       "their draws cannot be told apart")
                table[seed] = (epoch, i, idx)
        return table

    def lora_factors(self, config, key, shape, dtype, population):
        if len(shape) != 2:
            raise ValueError(f"lora_factors needs a 2-D shape, got {shape}")
        module = one_param_module(torch.zeros(shape, dtype=torch_dtype(dtype)))
        params, records = self._member_params(config, module, {"w": key}, population)
        outs = [r for r in records if "out" in r]
        a_rows, b_rows = [], []
        for noise in params["w"]:
            sign, rec = self._match(noise, outs)
            # The port scales a param-dtype tensor, so its scale enters in that dtype.
            a_rows.append(rec["left"] * torch.tensor(sign * rec["scale"], dtype=rec["left"].dtype))
            b_rows.append(rec["right"].T)
        return to_numpy(torch.stack(a_rows)), to_numpy(torch.stack(b_rows))

    @staticmethod
    def _match(noise: torch.Tensor, records: list) -> tuple[float, dict]:
        """The record whose scaled product is this member's noise, and the sign it carries."""
        for rec in records:
            if torch.equal(noise, rec["out"]):
                return 1.0, rec
            if torch.equal(noise, -rec["out"]):
                return -1.0, rec
        raise RuntimeError("a member's noise is neither a recorded low-rank product nor its negation")

    def full_noise(self, config, key, shape, dtype, population):
        if len(shape) == 2:
            raise base.Unsupported("torcheggroll perturbs every 2-D parameter with low-rank noise; "
                                   "it has no full-rank noise for a 2-D leaf")
        module = one_param_module(torch.zeros(shape, dtype=torch_dtype(dtype)))
        return to_numpy(self._member_params(config, module, {"w": key}, population)[0]["w"])

    def do_mm(self, config, param, key, population, x):
        _check_config(config)
        p = to_torch(param)
        linear = nn.Linear(p.shape[1], p.shape[0], bias=False, dtype=p.dtype)
        with torch.no_grad():
            linear.weight.copy_(p)
        xs = to_torch(x)
        if population is None:
            with torch.no_grad():
                return to_numpy(linear(xs))
        weights = self._member_params(config, linear, {"weight": key}, population)[0]["weight"]
        with torch.no_grad():
            ys = [torch.func.functional_call(linear, {"weight": w}, (xn,)) for w, xn in zip(weights, xs)]
        return to_numpy(torch.stack(ys))

    def do_Tmm(self, config, param, key, population, x):
        raise base.Unsupported("torcheggroll has no transposed matmul; its forward is the user's module")

    def noisy_standard(self, config, param, key, population):
        p = to_torch(param)
        if population is None:
            return to_numpy(p)
        if p.ndim == 2:
            raise base.Unsupported("torcheggroll perturbs every 2-D parameter with low-rank noise; "
                                   "it has no full-rank noise for a 2-D leaf")
        module = nn.Module()
        module.register_parameter("b", nn.Parameter(p))
        keys = {"b": key}
        param_filter = None
        if config.freeze_nonlora:
            # freeze_nonlora maps onto the port's param_filter (only matrices evolve); the port
            # needs at least one evolving parameter, so a matrix rides along.
            module.register_parameter("m", nn.Parameter(torch.zeros(2, 2, dtype=p.dtype)))
            keys["m"] = np.zeros(2, np.uint32)
            param_filter = _matrices_only
        return to_numpy(self._member_params(config, module, keys, population, param_filter)[0]["b"])

    # ---- the update, on the reference's noise ---------------------------------------------
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        _check_config(config)
        if noise is None:
            raise base.Unsupported("torcheggroll draws its own noise; its update is checked on injected noise")
        module = module_from_tree(params)
        classes = dict(trees.items(es_map))
        evolved = {torch_name(p) for p, c in classes.items()
                   if c == MM_PARAM or (c == PARAM and not config.freeze_nonlora)}
        n = population.size
        es = _port().TorchEggrollES(module, pop_size=n, sigma=config.sigma, lr=config.lr, rank=config.rank,
                                    param_filter=lambda p, name: name in evolved, normalize_fitness=False,
                                    antithetic=False)
        dtypes = {name: p.dtype for name, p in module.named_parameters()}
        # The port holds noise in the parameter's dtype (golden vectors may carry it wider).
        injected = {torch_name(path): _full_noise(leaf).to(dtypes[torch_name(path)]) for path, leaf in noise.items()
                    if torch_name(path) in evolved}
        es._generate_all_noise = lambda: injected
        es.prepare_population()
        es.apply_fitness_scores(to_torch(fitnesses))
        return tree_from_module(module, params)


def _matrices_only(param, name) -> bool:
    return param.ndim == 2


def _full_noise(leaf) -> torch.Tensor:
    """A leaf's reference noise as the port holds it: one full tensor per member."""
    if leaf.kind == "lora":
        a, b = (to_torch(x) for x in leaf.arrays)
        return torch.einsum("nir,njr->nij", a, b)
    if leaf.kind == "full":
        return to_torch(leaf.arrays[0])
    raise ValueError(f"leaf noise of kind {leaf.kind!r} cannot be injected into an evolved parameter")
