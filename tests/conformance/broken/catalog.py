"""The catalog: one deliberately broken backend per bug seen in public EGGROLL ports.

Each class is eggroll_torch with ONE behaviour changed; ``flagged_by`` is the check whose id
names that behaviour, which must fail for it, or, for a drift within the tolerance
(``caught_as = "drifted"``), whose error the baseline's ratchet must catch. Usable as plug-ins
too, e.g. ``PYTHONPATH=tests/conformance python -m conformance run --backend broken.catalog:DdofOne``.
"""
from __future__ import annotations

import numpy as np
import torch

from conformance import trees
from conformance.spec import VARIANCE_EPS, Population, SolverSpec

from .base import Mutant, member_scale


def _zscore(raw, ddof=0, eps_outside=False):
    r = torch.as_tensor(np.asarray(raw, np.float32))
    centred = r - r.mean()
    var = r.var(correction=ddof)
    scale = torch.sqrt(var) + VARIANCE_EPS if eps_outside else torch.sqrt(var + VARIANCE_EPS)
    return (centred / scale).numpy()


class DdofOne(Mutant):
    bug = "fitness variance with torch's default ddof=1 (sample variance)"
    flagged_by = "normalization.population_variance"

    def convert_fitnesses(self, config, raw):
        if config.group_size:
            return super().convert_fitnesses(config, raw)
        return _zscore(raw, ddof=1)


class EpsOutsideSqrt(Mutant):
    bug = "(x - mean) / (std + 1e-5) instead of / sqrt(var + 1e-5)"
    flagged_by = "normalization.eps_inside_sqrt"

    def convert_fitnesses(self, config, raw):
        if config.group_size:
            return super().convert_fitnesses(config, raw)
        return _zscore(raw, eps_outside=True)


class PerGroupStd(Mutant):
    bug = "group normalization divides each group by its own std"
    flagged_by = "normalization.group_global_std"

    def convert_fitnesses(self, config, raw):
        if not config.group_size or config.noiser == "eggrollbs":
            return super().convert_fitnesses(config, raw)
        g = torch.as_tensor(np.asarray(raw, np.float32)).reshape(-1, config.group_size)
        centred = g - g.mean(dim=1, keepdim=True)
        return (centred / torch.sqrt(g.var(dim=1, correction=0, keepdim=True) + VARIANCE_EPS)).reshape(-1).numpy()


class FreshNoiseReuseZero(Mutant):
    bug = "noise_reuse=0 redraws noise every epoch (read as 'no reuse')"
    flagged_by = "noise.reuse_zero_freezes"
    changes_noise = True

    def members(self, config, population):
        return (config.with_(noise_reuse=1) if config.noise_reuse == 0 else config), population


class PairsHalfApart(Mutant):
    bug = "antithetic pairs are members (i, i + N/2) instead of threads (2i, 2i + 1)"
    flagged_by = "signs.antithetic_pair"
    changes_noise = True

    def members(self, config, population):
        n = population.size
        half = max(n // 2, 1)
        i = np.arange(n)
        return config, Population(population.epochs, 2 * (i % half) + (i >= half))


class SignNeverAlternated(Mutant):
    bug = "every member uses +sigma (the sign is never alternated)"
    flagged_by = "signs.alternation"
    changes_noise = True

    def members(self, config, population):
        return config, Population(population.epochs, 2 * (population.thread_ids // 2))


class NoInvSqrtRank(Mutant):
    bug = "low-rank noise scaled by sigma instead of sigma / sqrt(rank)"
    flagged_by = "noise.rank_scaling"
    changes_noise = True

    def factors(self, config, shape, population, a, b):
        return (np.asarray(a, np.float64) * np.sqrt(config.rank)).astype(np.float32), b


class SlicesSwapped(Mutant):
    bug = "A = draw[:a] and B = draw[a:] (upstream: B = draw[:b], A = draw[b:])"
    flagged_by = "noise.lora_slices"
    changes_noise = True

    def factors(self, config, shape, population, a, b):
        rows = shape[0]
        scale = member_scale(config, population)
        draw = np.concatenate([np.asarray(b, np.float64), np.asarray(a, np.float64) / scale], axis=1)
        return (draw[:, :rows] * scale).astype(np.float32), draw[:, rows:].astype(np.float32)


class ThreadNotHalved(Mutant):
    bug = "member key folds in thread_id instead of thread_id // 2"
    flagged_by = "noise.thread_halving"
    changes_noise = True

    def members(self, config, population):
        t = population.thread_ids
        return config, Population(population.epochs, 2 * t + (t % 2))


class ReuseModulo(Mutant):
    bug = "noise epoch is epoch % noise_reuse instead of epoch // noise_reuse"
    flagged_by = "noise.reuse_blocks"
    changes_noise = True

    def members(self, config, population):
        k = config.noise_reuse
        if k == 0:
            return config, population
        return config, Population((population.epochs % k) * k, population.thread_ids)


class RankClipped(Mutant):
    bug = "rank clipped to min(a, b) for small matrices"
    flagged_by = "noise.rank_not_clipped"
    changes_noise = True

    def draw_config(self, config, shape):
        return config.with_(rank=min(config.rank, *shape))


class BiasesNeverPerturbed(Mutant):
    bug = "non-matrix parameters (biases) are never perturbed"
    flagged_by = "noise.bias_perturbed"
    changes_noise = True

    def full(self, config, population, noise):
        return np.zeros_like(noise)


class BiasUpdateOverSigma(Mutant):
    bug = "bias update divided by sigma (score-function estimator of other ES codes)"
    flagged_by = "update.sigma_scaling"
    changes_noise = True

    def update_noise(self, config, kind, arrays):
        if kind != "full":
            return arrays
        return tuple((np.asarray(a, np.float64) / config.sigma).astype(np.float32) for a in arrays)


class MissingSqrtN(Mutant):
    bug = "update not multiplied by sqrt(N)"
    flagged_by = "update.scale_sqrt_n"

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        f = np.asarray(fitnesses, np.float32)
        return super().do_updates(config, params, es_map, keys, (f / np.sqrt(f.size)).astype(np.float32), population,
                                  noise)


class DescentOnFitness(Mutant):
    bug = "the step descends on fitness (sign of the update flipped)"
    flagged_by = "update.ascent_sign"

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        return super().do_updates(config, params, es_map, keys, -np.asarray(fitnesses, np.float32), population, noise)


def _torch_adamw_default(spec: SolverSpec | None) -> SolverSpec | None:
    if spec is None or spec.name != "adamw" or "weight_decay" in spec.kwargs_dict:
        return spec
    return SolverSpec.make("adamw", **spec.kwargs_dict, weight_decay=1e-2)


class AdamwTorchDecay(Mutant):
    bug = "AdamW with torch's default weight_decay=1e-2 (optax: 1e-4)"
    flagged_by = "optimizer.adamw_defaults"

    def optimizer_steps(self, solver, lr, params, grads):
        return super().optimizer_steps(_torch_adamw_default(solver), lr, params, grads)

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        return super().do_updates(config.with_(solver=_torch_adamw_default(config.solver)), params, es_map, keys,
                                  fitnesses, population, noise)


class UpdateLeftInFloat32(Mutant):
    bug = "bfloat16 params: the update is added to float32 copies and never cast back to the param's dtype"
    flagged_by = "update.low_precision"

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        # The update checks step with SGD, which does not read the params: from zero params the new
        # params are the update itself, in the param's dtype.
        zeros = trees.map_leaves(np.zeros_like, params)
        updates = super().do_updates(config, zeros, es_map, keys, fitnesses, population, noise)
        return trees.map_leaves(lambda p, u: np.asarray(p, np.float32) + np.asarray(u, np.float32), params, updates)


class SgdInFloat64(Mutant):
    bug = "the SGD step computed in float64 and rounded once: up to 1 ULP from optax's two float32 roundings"
    flagged_by = "optimizer.sgd"
    caught_as = "drifted"

    def optimizer_steps(self, solver, lr, params, grads):
        if solver.name != "sgd" or solver.kwargs_dict:
            return super().optimizer_steps(solver, lr, params, grads)
        p = dict(params)
        out = []
        for g in grads:
            p = {k: (np.asarray(v, np.float64) - lr * np.asarray(g[k], np.float64)).astype(np.float32)
                 for k, v in p.items()}
            out.append(p)
        return out


class AdamEpsKeras(Mutant):
    bug = "Adam's eps is Keras's 1e-7 instead of optax's 1e-8: wrong where gradients are small"
    flagged_by = "optimizer.adam"

    def optimizer_steps(self, solver, lr, params, grads):
        if solver.name == "adam" and "eps" not in solver.kwargs_dict:
            solver = SolverSpec.make("adam", **solver.kwargs_dict, eps=1e-7)
        return super().optimizer_steps(solver, lr, params, grads)


class KeysRegistrationOrder(Mutant):
    bug = "per-parameter keys assigned in registration order instead of sorted flatten order"
    flagged_by = "keys.tree_order"

    def tree_keys(self, params, base_key, scan_map):
        from eggroll_torch import random
        from eggroll_torch.models.common import recursive_scan_split

        ordered = trees.paths(params, sort_keys=False)
        split = random.split(self.key(base_key), len(ordered))
        scan = dict(trees.items(scan_map))
        leaf = dict(trees.items(params))
        flat = {p: self.out(recursive_scan_split(self.tensor(leaf[p]), split[i], tuple(scan[p])))
                for i, p in enumerate(ordered)}
        return trees.from_paths(flat, params)


CATALOG: tuple[type[Mutant], ...] = (
    DdofOne, EpsOutsideSqrt, PerGroupStd, FreshNoiseReuseZero, PairsHalfApart, SignNeverAlternated,
    NoInvSqrtRank, SlicesSwapped, ThreadNotHalved, ReuseModulo, RankClipped, BiasesNeverPerturbed,
    BiasUpdateOverSigma, MissingSqrtN, DescentOnFitness, AdamwTorchDecay, KeysRegistrationOrder,
    UpdateLeftInFloat32, SgdInFloat64, AdamEpsKeras,
)
