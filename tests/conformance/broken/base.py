"""Machinery of the deliberately broken backends: eggroll_torch with exactly one behaviour changed.

A :class:`Mutant` is the eggroll_torch adapter plus hooks. Noise bugs are written once, as a
change of the drawn noise (:meth:`Mutant.factors`, :meth:`Mutant.full`) or of which member /
epoch a draw belongs to (:meth:`Mutant.members`); every operation then sees the same broken
noise, as it would in a real port: the forward pass is recomputed from the broken factors and
``do_updates`` runs eggroll_torch's own update algebra on them through noise injection.
Bugs of fitness shaping, solver or keys override that one operation instead.
"""
from __future__ import annotations

import numpy as np

from conformance import trees
from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.spec import EMB_PARAM, EXCLUDED, MM_PARAM, LeafNoise, NoiserConfig, Population

LOW_RANK = ("eggroll", "reeggroll", "alteggroll")


class Mutant(EggrollTorchAdapter):
    """eggroll_torch with one bug. Subclasses set ``bug`` (what a port got wrong) and ``flagged_by``
    (the check whose id names that behaviour) and override one hook or operation."""

    bug = ""
    flagged_by = ""
    changes_noise = False

    def __init__(self):
        super().__init__("cpu")
        self.name = "broken." + type(self).__name__

    # ---- hooks: identity unless a bug overrides them ----------------------------------------
    def members(self, config: NoiserConfig, population: Population) -> tuple[NoiserConfig, Population]:
        """Which (config, population) the draws are taken for."""
        return config, population

    def factors(self, config: NoiserConfig, shape: tuple, population: Population, a, b):
        """Low-rank factors as the broken port ends up with them."""
        return a, b

    def full(self, config: NoiserConfig, population: Population, noise):
        """Full-rank noise as the broken port ends up with it."""
        return noise

    def update_noise(self, config: NoiserConfig, kind: str, arrays: tuple) -> tuple:
        """Noise as the broken port's UPDATE uses it (the forward pass is unaffected)."""
        return arrays

    def draw_config(self, config: NoiserConfig, shape: tuple) -> NoiserConfig:
        return config

    # ---- noise ------------------------------------------------------------------------------
    def lora_factors(self, config, key, shape, dtype, population):
        c, p = self.members(config, population)
        c = self.draw_config(c, shape)
        a, b = super().lora_factors(c, key, shape, dtype, p)
        return self.factors(c, shape, population, a, b)

    def full_noise(self, config, key, shape, dtype, population):
        c, p = self.members(config, population)
        return self.full(c, population, super().full_noise(c, key, shape, dtype, p))

    # ---- forward from the broken noise ------------------------------------------------------
    def _lowrank_forward(self, config, param, key, population, x, transposed: bool):
        base = super().do_Tmm if transposed else super().do_mm
        if population is None or config.noiser not in LOW_RANK:
            return base(config, param, key, population, x)
        plain = base(config, param, key, None, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
        shape = tuple(param.shape)
        a, b = (np.asarray(f, np.float64) for f in self.lora_factors(config, key, shape, str(param.dtype), population))
        xs = np.asarray(x, np.float64)
        # do_mm: x @ B @ A.T with param (out=a, in=b); do_Tmm: x @ A @ B.T with param (in=a, out=b).
        first, second = (a, b) if transposed else (b, a)
        hidden = np.einsum("n...i,nir->n...r", xs, first)
        return (plain + np.einsum("n...r,nor->n...o", hidden, second)).astype(plain.dtype)

    def do_mm(self, config, param, key, population, x):
        return self._lowrank_forward(config, param, key, population, x, transposed=False)

    def do_Tmm(self, config, param, key, population, x):
        return self._lowrank_forward(config, param, key, population, x, transposed=True)

    def noisy_standard(self, config, param, key, population):
        if population is None or config.freeze_nonlora or config.noiser == "noop":
            return super().noisy_standard(config, param, key, population)
        noise = self.full_noise(config, key, tuple(param.shape), str(param.dtype), population)
        return (np.asarray(param, np.float32)[None] + noise).astype(np.float32)

    # ---- update on the broken noise ---------------------------------------------------------
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if noise is None and self.changes_noise and config.noiser in LOW_RANK + ("open_es",):
            noise = self.own_noise(config, params, es_map, keys, population)
        if noise is not None:
            noise = {p: LeafNoise(n.kind, self.update_noise(config, n.kind, n.arrays)) for p, n in noise.items()}
        return super().do_updates(config, params, es_map, keys, fitnesses, population, noise)

    def own_noise(self, config, params, es_map, keys, population) -> dict:
        emap = dict(trees.items(es_map))
        kmap = dict(trees.items(keys))
        out = {}
        for path, param in trees.items(params):
            cls = emap[path]
            shape, dtype = tuple(param.shape), str(param.dtype)
            if cls in (EMB_PARAM, EXCLUDED) or np.asarray(kmap[path]).ndim != 1:
                continue
            if cls == MM_PARAM and config.noiser != "open_es":
                out[path] = LeafNoise("lora", self.lora_factors(config, kmap[path], shape, dtype, population))
            else:
                out[path] = LeafNoise("full", (self.full_noise(config, kmap[path], shape, dtype, population),))
        return out


def member_scale(config: NoiserConfig, population: Population) -> np.ndarray:
    """``+-sigma / sqrt(rank)`` per member, the factor upstream folds into ``A``: ``(N, 1, 1)``."""
    sign = np.where(population.thread_ids % 2 == 0, 1.0, -1.0)
    return (sign * np.float32(config.sigma) / np.sqrt(np.float32(config.rank)))[:, None, None]
