"""The catalog: one deliberately broken backend per bug seen in public EGGROLL ports.

Each class is eggroll_torch with ONE behaviour changed, described by the entry of its name in
``conformance.bugs.BUGS``; ``flagged_by`` is the check whose id names that behaviour, which must
fail for it (on the cases carrying the bug's flag), or, for a drift within the tolerance
(``caught_as = "drifted"``), whose error the baseline's ratchet must catch. Usable as plug-ins
too, e.g. ``PYTHONPATH=tests/conformance python -m conformance run --backend broken.catalog:DdofOne``.
"""
from __future__ import annotations

import numpy as np
import torch

from conformance import trees
from conformance.spec import VARIANCE_EPS, Population, SolverSpec
from conformance.tolerances import dtype_name

from .base import Mutant, member_scale


def _zscore(raw, ddof=0, eps_outside=False):
    r = torch.as_tensor(np.asarray(raw, np.float32))
    centred = r - r.mean()
    var = r.var(correction=ddof)
    scale = torch.sqrt(var) + VARIANCE_EPS if eps_outside else torch.sqrt(var + VARIANCE_EPS)
    return (centred / scale).numpy()


class DdofOne(Mutant):
    def convert_fitnesses(self, config, raw):
        if config.group_size:
            return super().convert_fitnesses(config, raw)
        return _zscore(raw, ddof=1)


class EpsOutsideSqrt(Mutant):
    def convert_fitnesses(self, config, raw):
        if config.group_size:
            return super().convert_fitnesses(config, raw)
        return _zscore(raw, eps_outside=True)


class PerGroupStd(Mutant):
    def convert_fitnesses(self, config, raw):
        if not config.group_size or config.noiser == "eggrollbs":
            return super().convert_fitnesses(config, raw)
        g = torch.as_tensor(np.asarray(raw, np.float32)).reshape(-1, config.group_size)
        centred = g - g.mean(dim=1, keepdim=True)
        return (centred / torch.sqrt(g.var(dim=1, correction=0, keepdim=True) + VARIANCE_EPS)).reshape(-1).numpy()


class FreshNoiseReuseZero(Mutant):
    changes_noise = True

    def members(self, config, population):
        return (config.with_(noise_reuse=1) if config.noise_reuse == 0 else config), population


class PairsHalfApart(Mutant):
    changes_noise = True

    def members(self, config, population):
        n = population.size
        half = max(n // 2, 1)
        i = np.arange(n)
        return config, Population(population.epochs, 2 * (i % half) + (i >= half))


class SignNeverAlternated(Mutant):
    changes_noise = True

    def members(self, config, population):
        return config, Population(population.epochs, 2 * (population.thread_ids // 2))


class NoInvSqrtRank(Mutant):
    changes_noise = True

    def factors(self, config, shape, population, a, b):
        return (np.asarray(a, np.float64) * np.sqrt(config.rank)).astype(np.float32), b


class SlicesSwapped(Mutant):
    changes_noise = True

    def factors(self, config, shape, population, a, b):
        rows = shape[0]
        scale = member_scale(config, population)
        draw = np.concatenate([np.asarray(b, np.float64), np.asarray(a, np.float64) / scale], axis=1)
        return (draw[:, :rows] * scale).astype(np.float32), draw[:, rows:].astype(np.float32)


class ThreadNotHalved(Mutant):
    changes_noise = True

    def members(self, config, population):
        t = population.thread_ids
        return config, Population(population.epochs, 2 * t + (t % 2))


class ReuseModulo(Mutant):
    changes_noise = True

    def members(self, config, population):
        k = config.noise_reuse
        if k == 0:
            return config, population
        return config, Population((population.epochs % k) * k, population.thread_ids)


class RankClipped(Mutant):
    changes_noise = True

    def draw_config(self, config, shape):
        return config.with_(rank=min(config.rank, *shape))


class BiasesNeverPerturbed(Mutant):
    changes_noise = True

    def full(self, config, population, noise):
        return np.zeros_like(noise)


class BiasUpdateOverSigma(Mutant):
    changes_noise = True

    def update_noise(self, config, kind, arrays):
        if kind != "full":
            return arrays
        return tuple((np.asarray(a, np.float64) / config.sigma).astype(np.float32) for a in arrays)


class MissingSqrtN(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        f = np.asarray(fitnesses, np.float32)
        return super().do_updates(config, params, es_map, keys, (f / np.sqrt(f.size)).astype(np.float32), population,
                                  noise)


class DescentOnFitness(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        return super().do_updates(config, params, es_map, keys, -np.asarray(fitnesses, np.float32), population, noise)


def _torch_adamw_default(spec: SolverSpec | None) -> SolverSpec | None:
    if spec is None or spec.name != "adamw" or "weight_decay" in spec.kwargs_dict:
        return spec
    return SolverSpec.make("adamw", **spec.kwargs_dict, weight_decay=1e-2)


class AdamwTorchDecay(Mutant):
    def optimizer_steps(self, solver, lr, params, grads):
        return super().optimizer_steps(_torch_adamw_default(solver), lr, params, grads)

    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        return super().do_updates(config.with_(solver=_torch_adamw_default(config.solver)), params, es_map, keys,
                                  fitnesses, population, noise)


class UpdateLeftInFloat32(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if not any(dtype_name(v) == "bfloat16" for v in trees.leaves(params)):
            return super().do_updates(config, params, es_map, keys, fitnesses, population, noise)
        # The update checks step with SGD or adam, which do not read the params: from zero params
        # the new params are the update itself, in the param's dtype.
        zeros = trees.map_leaves(np.zeros_like, params)
        updates = super().do_updates(config, zeros, es_map, keys, fitnesses, population, noise)
        return trees.map_leaves(lambda p, u: np.asarray(p, np.float32) + np.asarray(u, np.float32), params, updates)


class Float16ThroughBfloat16(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        import ml_dtypes

        if not any(np.asarray(v).dtype == np.float16 for v in trees.leaves(params)):
            return super().do_updates(config, params, es_map, keys, fitnesses, population, noise)
        halved = trees.map_leaves(lambda v: np.asarray(v).astype(ml_dtypes.bfloat16), params)
        new = super().do_updates(config, halved, es_map, keys, fitnesses, population, noise)
        return trees.map_leaves(lambda v: np.asarray(v).astype(np.float16), new)


class StepLeftInStateDtype(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        state = None if config.solver is None else config.solver.kwargs_dict.get("mu_dtype")
        new = super().do_updates(config, params, es_map, keys, fitnesses, population, noise)
        if state is None:
            return new
        # The step does not read the params (adam without weight decay): new - old is the step.
        return trees.map_leaves(lambda p, n: np.asarray(p, np.float32)
                                + (np.asarray(n, np.float32) - np.asarray(p, np.float32)).astype(state), params, new)


class TrustRegionIgnored(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if config.noiser == "eggrollbs":
            config = config.with_(trust_region_norm=float("inf"))
        return super().do_updates(config, params, es_map, keys, fitnesses, population, noise)


class BatchedByShapeOnly(Mutant):
    def do_updates(self, config, params, es_map, keys, fitnesses, population, noise=None):
        if config.use_batched_update:
            first: dict[tuple, int] = {}
            shapes = dict(trees.items(params))
            classes = {p: first.setdefault(tuple(np.shape(shapes[p])), int(c)) for p, c in trees.items(es_map)}
            es_map = trees.from_paths(classes, es_map)
        return super().do_updates(config, params, es_map, keys, fitnesses, population, noise)


class SgdInFloat64(Mutant):
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
    def optimizer_steps(self, solver, lr, params, grads):
        if solver.name == "adam" and "eps" not in solver.kwargs_dict:
            solver = SolverSpec.make("adam", **solver.kwargs_dict, eps=1e-7)
        return super().optimizer_steps(solver, lr, params, grads)


class KeysRegistrationOrder(Mutant):
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
    UpdateLeftInFloat32, SgdInFloat64, AdamEpsKeras, Float16ThroughBfloat16, StepLeftInStateDtype,
    TrustRegionIgnored, BatchedByShapeOnly,
)
