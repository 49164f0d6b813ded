"""Fitness shaping (``convert_fitnesses``) of the Gaussian noisers, global and per group."""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import VARIANCE_EPS, NoiserConfig
from ..tolerances import compare
from ._common import law, requires
from .base import Case, Check, register

GLOBAL = "Fitness normalization"
GROUP = "Group normalization"


def _case(case_id: str, raw: np.ndarray, group_size: int = 0) -> Case:
    config = NoiserConfig(group_size=group_size)
    return Case(case_id, {"config": config, "raw": raw}, requires(config, extra={caps.CONVERT_FITNESSES}))


def _zscore_laws(z: np.ndarray, raw: np.ndarray) -> list[str]:
    """Global z-score laws from the raw scores alone: zero mean, mean square var/(var+eps)."""
    r = raw.astype(np.float64)
    var = r.var()
    want = var / (var + VARIANCE_EPS)
    got = float(np.mean(np.asarray(z, np.float64) ** 2))
    return (law(bool(np.all(np.isfinite(z))), "non-finite fitness")
            + law(compare(float(np.mean(z)), 0.0, "zscore_mean", scale=np.sqrt(want)).ok,
                  f"mean {np.mean(z):.3g} is not 0")
            + law(compare(got, want, "zscore_mean_square").ok,
                  f"mean square {got:.6g}, population-variance z-score gives {want:.6g}"))


class _Convert(Check):
    requires = frozenset({caps.CONVERT_FITNESSES})
    default_kind = "reduction"
    own_rng_relations = True

    def compute(self, adapter, case, noise=None):
        return {"fitness": np.asarray(adapter.convert_fitnesses(case["config"], case["raw"]))}


@register
class ZScore(_Convert):
    id = "normalization.zscore"
    component = GLOBAL
    summary = "group_size=0: (raw - mean) / sqrt(var + 1e-5) over the whole population"

    def cases(self, profile):
        sizes = (8, 7, 64) if profile == "ci" else (8, 7, 64, 3, 1000)
        return [_case(f"{kind}-n{n}", inputs.fitness(kind, n), 0)
                for n in sizes for kind in ("normal", "ties", "range_1e6", "negative", "outlier")]

    def relations(self, outputs, case):
        return _zscore_laws(outputs["fitness"], case["raw"])

    def strategy(self, profile):
        from hypothesis import strategies as st

        from ..hypothesis_support import float32_vectors

        return st.builds(lambda raw: _case("hypothesis", raw, 0), float32_vectors((2, 3, 8, 17, 64)))


@register
class PopulationVariance(_Convert):
    id = "normalization.population_variance"
    component = GLOBAL
    summary = "the variance is the population variance (ddof=0), not torch's default ddof=1"

    def cases(self, profile):
        return [_case(f"normal-n{n}", inputs.fitness("normal", n), 0) for n in (2, 3, 4, 5, 16)]

    def relations(self, outputs, case):
        return _zscore_laws(outputs["fitness"], case["raw"])


@register
class EpsInsideSqrt(_Convert):
    id = "normalization.eps_inside_sqrt"
    component = GLOBAL
    summary = "the 1e-5 is added to the variance inside the sqrt, not to the std"

    def cases(self, profile):
        out = []
        # Centred near 0 so the variance is tiny without (x - mean) cancelling catastrophically.
        for scale in (1e-2, 1e-3, 1e-4):
            g = inputs.rng(f"tiny:{scale}")
            raw = (scale * g.standard_normal(32)).astype(np.float32)
            out.append(_case(f"std{scale:g}-n32", raw, 0))
        return out

    def relations(self, outputs, case):
        return _zscore_laws(outputs["fitness"], case["raw"])


@register
class ConstantFitness(_Convert):
    id = "normalization.constant_fitness"
    component = GLOBAL
    summary = "constant fitness gives all zeros (the epsilon keeps 0/0 away), never NaN"

    def cases(self, profile):
        return [_case(f"const{v:g}-n{n}", np.full(n, v, np.float32), g)
                for v in (3.25, 0.0, -1e6, 2.0**-20) for n, g in ((8, 0), (16, 4))]

    def relations(self, outputs, case):
        z = outputs["fitness"]
        return law(bool(np.all(z == 0)), f"constant fitness gave {z[:4]} ... instead of zeros")


def _group_laws(z: np.ndarray, raw: np.ndarray, group: int) -> list[str]:
    """Per-group zero mean, and one GLOBAL scale: (raw - group mean) / z == sqrt(var(raw) + eps)."""
    r = raw.astype(np.float64).reshape(-1, group)
    zz = np.asarray(z, np.float64).reshape(-1, group)
    centred = r - r.mean(axis=1, keepdims=True)
    scale = np.sqrt(raw.astype(np.float64).var() + VARIANCE_EPS)
    big = np.abs(zz) > 1e-3
    ratio = centred[big] / zz[big]
    means = zz.mean(axis=1)
    return (law(compare(means, np.zeros_like(means), "group_mean", scale=np.abs(zz).max()).ok,
                "group means are not 0")
            + law(compare(ratio, np.full_like(ratio, scale), "group_scale").ok,
                  f"scores are divided by {np.unique(np.round(ratio, 6))[:4]} instead of the global "
                  f"sqrt(var + eps) = {scale:.6g}"))


@register
class Group(_Convert):
    id = "normalization.group"
    component = GROUP
    summary = "group_size>0: subtract each group's mean, divide by the global sqrt(var + 1e-5)"

    def cases(self, profile):
        return [_case(f"{kind}-n{n}-g{g}", inputs.fitness(kind, n), g)
                for n, g in ((16, 2), (16, 4), (32, 8), (24, 3))
                for kind in ("normal", "ties", "range_1e6", "outlier")]

    def relations(self, outputs, case):
        return _group_laws(outputs["fitness"], case["raw"], case["config"].group_size)

    def strategy(self, profile):
        from hypothesis import strategies as st

        from ..hypothesis_support import float32_vectors

        def make(group, groups, data):
            return _case("hypothesis", data.draw(float32_vectors((group * groups,))), group)

        return st.builds(make, st.sampled_from((2, 4, 8)), st.sampled_from((1, 3, 8)), st.data())


@register
class GroupGlobalStd(_Convert):
    id = "normalization.group_global_std"
    component = GROUP
    summary = "groups share ONE std, the whole population's, not a per-group std"

    def cases(self, profile):
        out = []
        for g in (4, 8):
            base = inputs.fitness("normal", 32, f"spread{g}").reshape(-1, g)
            scales = 10.0 ** np.arange(base.shape[0])[:, None]
            out.append(_case(f"spread-n32-g{g}", (base * scales).astype(np.float32).ravel(), g))
        return out

    def relations(self, outputs, case):
        return _group_laws(outputs["fitness"], case["raw"], case["config"].group_size)


@register
class SubnormalScores(_Convert):
    id = "normalization.subnormal_scores"
    component = GLOBAL
    impact = "low"
    summary = ("float32 scores below the smallest normal (1.2e-38) count as 0: XLA on CPU flushes "
               "subnormals to zero before shaping")
    own_rng_relations = False

    def cases(self, profile):
        return [_case("subnormal-only", np.array([1e-39, 2e-39, 3e-39, 0.0], np.float32)),
                _case("subnormal-pair", np.array([0.0, 1.6647e-42], np.float32)),
                _case("normal-with-subnormal", np.array([1.0, 1e-42, -1.0, 0.5], np.float32))]


@register
class GroupSizeMultiple(Check):
    id = "normalization.group_size_multiple"
    component = GROUP
    impact = "low"
    summary = "a population that is not a multiple of group_size is rejected"
    requires = frozenset({caps.CONVERT_FITNESSES})

    def cases(self, profile):
        return [_case(f"n{n}-g{g}", inputs.fitness("normal", n), g) for n, g in ((10, 4), (7, 2))]

    def compute(self, adapter, case, noise=None):
        try:
            adapter.convert_fitnesses(case["config"], case["raw"])
        except caps.Unsupported:
            raise
        except Exception:  # any rejection counts; the reference raises from reshape
            return {"raises": np.array(1, np.int32)}
        return {"raises": np.array(0, np.int32)}
