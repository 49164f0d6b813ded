"""The update: fitness-weighted noise, scaled by sqrt(N), handed to the solver as a descent step."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import inputs, trees
from ..adapters import base as caps
from ..spec import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM, NoiserConfig, Population, SolverSpec
from ..tolerances import compare
from ._common import requires
from ._updates import UpdateCheck, make_tree, update_case
from .base import Case, register

FORMULA = "Update formula"


@register
class LowRank(UpdateCheck):
    id = "update.lowrank"
    component = FORMULA
    summary = "matrix grad = einsum('nir,njr->ij', f * A, B) / N with A, B as drawn"

    def cases(self, profile):
        out = []
        for n in (8, 16):
            for rank in (1, 4):
                for kind in ("normal", "outlier"):
                    out.append(update_case(f"n{n}-r{rank}-{kind}", NoiserConfig(rank=rank, sigma=0.1),
                                           {"w": ((5, 4), MM_PARAM), "v": ((2, 7), MM_PARAM)},
                                           inputs.population("full", n), kind))
        return out

    def strategy(self, profile):
        from hypothesis import strategies as st

        from ..hypothesis_support import thread_id_arrays

        def make(shape, rank, ids, epoch, reuse, sigma):
            return update_case("hypothesis", NoiserConfig(rank=rank, noise_reuse=reuse, sigma=sigma),
                               {"w": (shape, MM_PARAM), "b": ((shape[0],), PARAM)}, Population.of(ids, epoch))

        return st.builds(make, st.sampled_from(((4, 3), (3, 5), (6, 6))), st.sampled_from((1, 2, 4)),
                         thread_id_arrays((2, 5, 8)), st.integers(0, 30),
                         st.sampled_from((0, 1, 4)), st.sampled_from((0.05, 0.5)))


@register
class Full(UpdateCheck):
    id = "update.full"
    component = FORMULA
    summary = "non-matrix grad = mean_n(f_n * noise_n), noise carrying its sign and sigma"

    def cases(self, profile):
        return [update_case(f"n{n}-{kind}", NoiserConfig(sigma=0.1),
                            {"bias": ((6,), PARAM), "table": ((3, 4), PARAM)}, inputs.population("full", n), kind)
                for n in (8, 32) for kind in ("normal", "ties")]


@register
class ScaleSqrtN(UpdateCheck):
    id = "update.scale_sqrt_n"
    component = "Scaling factor"
    summary = "the grad handed to the solver is -(estimate * sqrt(N)), N = fitnesses.size"

    def cases(self, profile):
        return [update_case(f"n{n}", NoiserConfig(rank=2, sigma=0.1), {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)},
                            inputs.population("full", n)) for n in (2, 8, 32, 128)]


@register
class SigmaScaling(UpdateCheck):
    id = "update.sigma_scaling"
    component = FORMULA
    summary = "the estimate scales WITH sigma (noise includes sigma), never divided by sigma"

    def cases(self, profile):
        return [update_case(f"sigma{s:g}", NoiserConfig(rank=2, sigma=s), {"w": ((4, 3), MM_PARAM), "b": ((5,), PARAM)},
                            inputs.population("full", 8)) for s in (0.01, 0.5, 3.0)]


@register
class AscentSign(UpdateCheck):
    id = "update.ascent_sign"
    component = "Update sign"
    summary = "with SGD the params move by +lr * sqrt(N) * estimate: ascent on fitness"
    requires = frozenset({caps.UPDATES, caps.NOISE})
    own_rng_relations = True

    def cases(self, profile):
        c = NoiserConfig(rank=1, sigma=0.2, lr=0.5)
        return [update_case("sgd-lr0.5", c, {"w": ((3, 3), MM_PARAM), "b": ((3,), PARAM)},
                            inputs.population("full", 4))]

    def compute(self, adapter, case, noise=None):
        out = super().compute(adapter, case, noise)
        if noise is not None:
            return {**out, **noise}
        pop, config = case["population"], case["config"]
        out["noise/b/full"] = adapter.full_noise(config, case["keys"]["b"], (3,), "float32", pop)
        out["noise/w/A"], out["noise/w/B"] = adapter.lora_factors(config, case["keys"]["w"], (3, 3), "float32", pop)
        return out

    def relations(self, outputs, case):
        f = case["fitnesses"].astype(np.float64)
        n, lr = f.size, case["config"].lr
        a, b = (np.asarray(outputs[f"noise/w/{k}"], np.float64) for k in "AB")
        want_w = lr * np.sqrt(n) * np.einsum("nir,njr->ij", f[:, None, None] * a, b) / n
        want_b = lr * np.sqrt(n) * np.mean(f[:, None] * np.asarray(outputs["noise/b/full"], np.float64), axis=0)
        msgs = []
        for name, want in (("w", want_w), ("b", want_b)):
            got = np.asarray(outputs[f"params/{name}"], np.float64)
            if not compare(got, want, "ascent_step").ok:
                sign = "descends" if compare(got, -want, "ascent_step").ok else "differs"
                msgs.append(f"{name}: step {sign} from +lr*sqrt(N)*estimate (max |got-want| "
                            f"{np.abs(got - want).max():.3g})")
        return msgs


@register
class ThreadSets(UpdateCheck):
    id = "update.thread_sets"
    component = FORMULA
    summary = "any member set works: permuted, subsets with broken pairs, odd counts, mixed epochs"

    def cases(self, profile):
        out = []
        for kind, n in (("permuted", 8), ("subset", 7), ("offset", 5)):
            pop = inputs.population(kind, n, np.arange(n) % 3, kind)
            out.append(update_case(f"{kind}-n{n}", NoiserConfig(rank=2, noise_reuse=2),
                                   {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)}, pop))
        return out


@register
class MixedTree(UpdateCheck):
    id = "update.mixed_tree"
    component = FORMULA
    summary = "one step over an MLP-like tree holding every es_map class"

    def cases(self, profile):
        leaves = {"0/weight": ((6, 3), MM_PARAM), "0/bias": ((6,), PARAM), "1/weight": ((2, 6), MM_PARAM),
                  "1/bias": ((2,), PARAM), "emb": ((5, 3), EMB_PARAM), "skip": ((2,), EXCLUDED)}
        return [update_case("mlp", NoiserConfig(rank=4, sigma=0.2), leaves, inputs.population("full", 16), zero=False)]


@register
class LowPrecision(UpdateCheck):
    id = "update.low_precision"
    component = FORMULA
    impact = "medium"

    summary = "bfloat16 and float16 params: noise drawn, grad and step cast in the param dtype, also when the " \
              "optimizer state is kept in another dtype"
    branches = {"bfloat16": "bfloat16 params", "float16": "float16 params (an 11-bit mantissa, not bfloat16's 8)",
                "state_dtype_differs": "adam keeps its first moment in float32 (mu_dtype) for bfloat16 params: "
                                       "the step is float32 and must be cast back to the param's dtype"}

    def cases(self, profile):
        leaves = {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)}
        c = NoiserConfig(rank=2, sigma=0.1)
        mixed = c.with_(lr=0.01, solver=SolverSpec.make("adam", mu_dtype="float32"))
        return [replace(update_case("bf16", c, leaves, inputs.population("full", 8), dtype="bfloat16"),
                        flags=frozenset({"bfloat16"})),
                replace(update_case("f16", c, leaves, inputs.population("full", 8), dtype="float16"),
                        flags=frozenset({"float16"})),
                replace(update_case("bf16-adam-f32-moment", mixed, leaves, inputs.population("full", 8),
                                    dtype="bfloat16"), flags=frozenset({"bfloat16", "state_dtype_differs"}))]

    def branch_hit(self, flag, case, outputs):
        dtypes = {str(v.dtype) for _, v in trees.items(case["params"])}
        if flag == "state_dtype_differs":
            solver = case["config"].solver
            return solver is not None and solver.kwargs_dict.get("mu_dtype") not in (None, *dtypes)
        return dtypes == {flag}


@register
class ScanMap(UpdateCheck):
    id = "update.scan_map"
    component = FORMULA
    impact = "medium"
    summary = "a stacked leaf (scan_map axes) is updated slice by slice with the slice's key"
    injectable = False

    def cases(self, profile):
        c = NoiserConfig(rank=2, sigma=0.1)
        params, es_map, _ = make_tree("scan", {"stack": ((3, 4, 5), MM_PARAM), "b": ((4,), PARAM)})
        g = inputs.rng("scan:keys")
        keys = {"stack": g.integers(0, 2**32, size=(3, 2), dtype=np.uint32), "b": inputs.key("scan:b")}
        pop = inputs.population("full", 6)
        fit = inputs.fitness("normal", 6, "scan")
        fit = ((fit - fit.mean()) / fit.std()).astype(np.float32)
        return [Case("stacked-3", {"config": c, "params": params, "es_map": es_map, "keys": keys,
                                   "fitnesses": fit, "population": pop},
                     requires(c, extra={caps.UPDATES, caps.SCAN_MAP}))]


@register
class BatchedEqualsPlain(UpdateCheck):
    id = "update.batched_equals_plain"
    component = FORMULA
    impact = "medium"
    summary = "use_batched_update=True groups same-shape leaves and gives the plain path's result"
    branches = {"same_shape_same_class": "several MM_PARAM leaves of one shape: batched together",
                "same_shape_other_class": "leaves of one shape in every es class: only the MM_PARAM ones may batch"}
    requires = frozenset({caps.UPDATES, caps.BATCHED_UPDATE})

    def cases(self, profile):
        leaves = {"a": ((4, 3), MM_PARAM), "b": ((4, 3), MM_PARAM), "c": ((4, 3), MM_PARAM), "d": ((4,), PARAM),
                  "e": ((4,), PARAM), "f": ((2, 5), MM_PARAM)}
        c = NoiserConfig(rank=2, sigma=0.1, use_batched_update=True)
        other = {**leaves, "g": ((4, 3), PARAM), "h": ((4, 3), EXCLUDED), "i": ((4, 3), EMB_PARAM)}
        return [replace(update_case("three-same", c, leaves, inputs.population("full", 8),
                                    extra={caps.BATCHED_UPDATE}), flags=frozenset({"same_shape_same_class"})),
                replace(update_case("same-shape-other-class", c, other, inputs.population("full", 8),
                                    extra={caps.BATCHED_UPDATE}), flags=frozenset({"same_shape_other_class"}))]

    def branch_hit(self, flag, case, outputs):
        emap = dict(trees.items(case["es_map"]))
        by_shape: dict[tuple, list] = {}
        for path, value in trees.items(case["params"]):
            by_shape.setdefault(tuple(value.shape), []).append(emap[path])
        if flag == "same_shape_other_class":
            return any(len(set(classes)) > 1 for classes in by_shape.values())
        return any(len(classes) > 1 and len(set(classes)) == 1 for classes in by_shape.values())

    def compute(self, adapter, case, noise=None):
        batched = super().compute(adapter, case, noise)
        plain_case = Case(case.case_id, {**case.inputs, "config": case["config"].with_(use_batched_update=False)})
        plain = super().compute(adapter, plain_case, noise)
        return {**{f"batched/{k}": v for k, v in batched.items()}, **{f"plain/{k}": v for k, v in plain.items()}}

    def relations(self, outputs, case):
        bad = [k for k in outputs if k.startswith("batched/")
               and not compare(outputs[k], outputs["plain/" + k[len("batched/"):]], "reduction").ok]
        return [f"batched and plain updates differ at {bad}"] if bad else []
