"""Adapter for the PyPI port ``eggroll-es`` (module ``eggroll``), written against 0.2.0.

The port's functional core is ``eggroll.core``: ``fitness_shaping(f, method)`` and
``evolve_step(params, perturbations, fitnesses, config)``. Operations:

* ``convert_fitnesses``: ``fitness_shaping(raw, "normalized")``, the z-score option; the port's
  default, ``"centered_rank"``, is rank-based shaping and has nothing to compare with upstream.
  No group normalization exists.
* ``do_updates``: ``evolve_step`` with ``fitness_shaping="raw"`` (``do_updates`` receives shaped
  fitnesses) on the reference noise, one ``{name: noise}`` dict per member as
  ``LowRankNoiser.sample_perturbations`` returns them (``A @ B.T`` for matrices). EMB_PARAM,
  EXCLUDED and, with ``freeze_nonlora``, PARAM leaves are left out of ``params``, as the port's
  ``target_modules`` would.

Not injectable, so not checked: the noise itself. ``LowRankNoiser`` draws every member from one
generator seeded once, in call order, so no draw names a (member, epoch) that a reference draw
could be routed to; and its perturbation of a ``(a, b)`` matrix is ``(A * B).sum(-1)`` over two
``(a * b, r)`` factors, reshaped: not a rank-``r`` matrix ``A @ B.T``, so there are no factors to
return. Also unsupported: solvers other than plain SGD, ``noise_reuse``, the forward pass, keys,
``optimizer_steps`` and the trajectory.
"""
from __future__ import annotations

import importlib
from importlib import metadata

import numpy as np
import torch

from ... import trees
from ...spec import MM_PARAM, PARAM, NoiserConfig
from .. import base
from ._torch_trees import to_numpy, to_torch, torch_name

PACKAGE = "eggroll-es"


def _core():
    return importlib.import_module("eggroll.core")


def _config(config: NoiserConfig, population_size: int, shaping: str):
    if config.group_size:
        raise base.Unsupported("eggroll-es has no group normalization (group_size)")
    solver = config.solver
    if solver is not None and (solver.name != "sgd" or solver.kwargs):
        raise base.Unsupported("eggroll-es's only update rule is plain SGD (param += lr * estimate)")
    return _core().EggrollConfig(population_size=population_size, rank=config.rank, sigma=config.sigma,
                                 lr=config.lr, device="cpu", fitness_shaping=shaping)


class EggrollEsAdapter(base.Adapter):
    """``eggroll-es`` behind the harness protocol: fitness shaping and the update on injected noise."""

    # bfloat16 results come back as their exact float32 values (_torch_trees.to_numpy).
    widens_bfloat16 = True
    name = "eggroll-es"
    capabilities = frozenset({base.CONVERT_FITNESSES, base.UPDATES, base.INJECT_NOISE,
                              base.noiser_capability("eggroll"), base.dtype_capability("float32")})

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(
            self.name, metadata.version(PACKAGE), "cpu", {"torch": torch.__version__},
            "one torch.Generator seeded once, members drawn in call order, so no draw can be routed; "
            "perturbations are (A * B).sum(-1), not A @ B.T")

    def convert_fitnesses(self, config, raw):
        _config(config, len(raw), "normalized")
        return to_numpy(_core().fitness_shaping(to_torch(raw), "normalized"))

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if noise is None:
            raise base.Unsupported("eggroll-es draws its own noise; its update is checked on injected noise")
        port_config = _config(config, population.size, "raw")
        classes = dict(trees.items(es_map))
        targets = [p for p, c in classes.items() if c == MM_PARAM or (c == PARAM and not config.freeze_nonlora)]
        values = dict(trees.items(params))
        current = {torch_name(p): to_torch(values[p]) for p in targets}
        # The port holds noise in the parameter's dtype (golden vectors may carry it wider).
        members = [{torch_name(p): _member_noise(noise[p], n).to(current[torch_name(p)].dtype) for p in targets}
                   for n in range(population.size)]
        updated = _core().evolve_step(current, members, to_torch(fitnesses), port_config)
        return trees.map_leaves_with_path(
            lambda path, leaf: to_numpy(updated[torch_name(path)]) if path in targets else np.asarray(leaf), params)


def _member_noise(leaf, n: int) -> torch.Tensor:
    if leaf.kind == "lora":
        a, b = (to_torch(x[n]) for x in leaf.arrays)
        return a @ b.T
    if leaf.kind == "full":
        return to_torch(leaf.arrays[0][n])
    raise ValueError(f"leaf noise of kind {leaf.kind!r} cannot be injected into an evolved parameter")
