"""The noise one member draws: keys per (epoch, thread), low-rank factors, full-rank noise."""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM, NoiserConfig, Population
from ..tolerances import std_tolerance
from ._common import law, pair_index, requires
from ._updates import UpdateCheck, update_case
from .base import Case, Check, register

LORA = "Lora generation"
LOWRANK = "Low-rank structure"
REUSE = "Noise reuse"
NONLORA = "Non-matrix noise"


def noise_case(case_id: str, config: NoiserConfig, population: Population, lora_shape=None,
               full_shape=None, dtype: str = "float32", mm_x: int | None = None) -> Case:
    """Draw the factors of a ``lora_shape`` matrix and/or the full noise of a ``full_shape`` leaf
    (and, with ``mm_x``, push a ``(N, mm_x, b)`` batch through ``do_mm``) for ``population``."""
    extra = {caps.NOISE}
    data = {"config": config, "population": population, "key": inputs.key(case_id), "dtype": dtype}
    if lora_shape is not None:
        data["lora_shape"] = tuple(lora_shape)
    if full_shape is not None:
        data["full_shape"] = tuple(full_shape)
    if mm_x is not None:
        data["param"] = inputs.normal(case_id + ":param", lora_shape)
        data["x"] = inputs.normal(case_id + ":x", (population.size, mm_x, lora_shape[1]))
        extra.add(caps.FORWARD)
    return Case(case_id, data, requires(config, dtype, extra=extra))


class NoiseCheck(Check):
    """Compares drawn noise: ``B`` (the raw normal draw) bit for bit, ``A`` and full noise within
    the elementwise tolerance (they carry ``sigma`` products), ``do_mm`` outputs as reductions."""

    requires = frozenset({caps.NOISE})
    rng = True
    own_rng_relations = True
    default_kind = "elementwise"
    output_kinds = {"B": "exact", "mm": "reduction"}

    def compute(self, adapter, case, noise=None):
        config, pop, key, dtype = case["config"], case["population"], case["key"], case["dtype"]
        out = {}
        if "lora_shape" in case.inputs:
            out["A"], out["B"] = adapter.lora_factors(config, key, case["lora_shape"], dtype, pop)
        if "full_shape" in case.inputs:
            out["noise"] = adapter.full_noise(config, key, case["full_shape"], dtype, pop)
        if "x" in case.inputs:
            out["mm"] = adapter.do_mm(config, case["param"], key, pop, case["x"])
        return {k: np.asarray(v) for k, v in out.items()}


def pair_laws(outputs, thread_ids) -> list[str]:
    """Threads 2i and 2i+1: identical ``B``, negated ``A`` and negated full noise."""
    msgs = []
    for i, (m0, m1) in pair_index(thread_ids).items():
        if "B" in outputs and not np.array_equal(outputs["B"][m0], outputs["B"][m1]):
            msgs.append(f"threads {2 * i},{2 * i + 1}: B differs (not one antithetic pair)")
        if "A" in outputs and not np.array_equal(outputs["A"][m0], -outputs["A"][m1]):
            msgs.append(f"threads {2 * i},{2 * i + 1}: A is not negated")
        if "noise" in outputs and not np.array_equal(outputs["noise"][m0], -outputs["noise"][m1]):
            msgs.append(f"threads {2 * i},{2 * i + 1}: full noise is not negated")
    return msgs[:4]


def independent(population: Population) -> int:
    """Members with distinct noise: one per (epoch, thread // 2)."""
    return len(set(zip(population.epochs.tolist(), (population.thread_ids // 2).tolist())))


def same_noise(outputs, m0: int, m1: int) -> bool:
    return all(np.array_equal(outputs[k][m0], outputs[k][m1]) for k in ("A", "B", "noise") if k in outputs)


@register
class ThreadHalving(NoiseCheck):
    id = "noise.thread_halving"
    component = "Thread ID alternation"
    summary = "a member's key is fold_in(fold_in(k, epoch'), thread_id // 2)"

    def cases(self, profile):
        ids = np.array([0, 1, 2, 3, 10, 11, 1000, 1001, 77, 76], np.int32)
        return [noise_case("mixed-ids", NoiserConfig(rank=2), Population.of(ids), (4, 3), (5,)),
                noise_case("offset", NoiserConfig(rank=1), inputs.population("offset", 6), (3, 3), (2, 2))]

    def relations(self, outputs, case):
        return pair_laws(outputs, case["population"].thread_ids)


@register
class LoraFactors(NoiseCheck):
    id = "noise.lora_factors"
    component = LORA
    summary = "one normal((a + b, rank)) draw in the param dtype per member and matrix"

    def cases(self, profile):
        out = []
        for shape in ((4, 3), (3, 5), (1, 7), (16, 3), (8, 8)):
            for rank in ((1, 8) if shape[0] != 3 else (2,)):
                out.append(noise_case(f"{shape[0]}x{shape[1]}-r{rank}", NoiserConfig(rank=rank, sigma=0.3),
                                      inputs.population("permuted", 6, name=str(shape)), shape))
        for dtype in ("bfloat16", "float16"):
            out.append(noise_case(f"5x4-r2-{dtype}", NoiserConfig(rank=2), inputs.population("full", 4), (5, 4),
                                  dtype=dtype))
        return out

    def relations(self, outputs, case):
        n = case["population"].size
        a, b = case["lora_shape"]
        r = case["config"].rank
        return (law(outputs["A"].shape == (n, a, r), f"A has shape {outputs['A'].shape}, want {(n, a, r)}")
                + law(outputs["B"].shape == (n, b, r), f"B has shape {outputs['B'].shape}, want {(n, b, r)}"))

    def strategy(self, profile):
        from hypothesis import strategies as st

        from ..hypothesis_support import thread_id_arrays

        def make(shape, rank, sigma, ids, epoch, reuse):
            return noise_case("hypothesis", NoiserConfig(rank=rank, sigma=sigma, noise_reuse=reuse),
                              Population.of(ids, epoch), shape, (shape[0],))

        return st.builds(make, st.sampled_from(((4, 3), (3, 5), (1, 7), (6, 6))), st.sampled_from((1, 2, 4)),
                         st.sampled_from((0.01, 0.1, 1.0)), thread_id_arrays(), st.integers(0, 50),
                         st.sampled_from((0, 1, 3)))


@register
class LoraSlices(NoiseCheck):
    id = "noise.lora_slices"
    component = LORA
    summary = "B = draw[:b] and A = draw[b:] of the (a + b, rank) draw"
    own_rng_relations = False

    def cases(self, profile):
        return [noise_case(f"{a}x{b}-r3", NoiserConfig(rank=3), inputs.population("full", 4), (a, b))
                for a, b in ((2, 6), (6, 2), (5, 5))]


@register
class RankScaling(NoiseCheck):
    id = "noise.rank_scaling"
    component = LOWRANK
    summary = "the low-rank perturbation is scaled by sigma / sqrt(rank)"

    def cases(self, profile):
        return [noise_case(f"6x5-r{r}", NoiserConfig(rank=r, sigma=0.5), inputs.population("full", 8), (6, 5),
                           mm_x=2) for r in (1, 4, 16)]

    def relations(self, outputs, case):
        c = case["config"]
        want = c.sigma / np.sqrt(c.rank)
        got = float(np.std(outputs["A"]) / np.std(outputs["B"]))
        samples = independent(case["population"]) * outputs["A"].shape[-2] * c.rank
        return law(abs(got / want - 1) < std_tolerance(samples),
                   f"std(A)/std(B) = {got:.4g}, sigma/sqrt(rank) = {want:.4g}")


@register
class RankNotClipped(NoiseCheck):
    id = "noise.rank_not_clipped"
    component = LOWRANK
    summary = "rank may exceed min(a, b): factors keep rank columns (no clipping)"

    def cases(self, profile):
        return [noise_case(f"{a}x{b}-r{r}", NoiserConfig(rank=r, sigma=0.5), inputs.population("full", 4), (a, b),
                           mm_x=3) for a, b, r in ((3, 5, 8), (2, 9, 4), (1, 4, 2))]

    def relations(self, outputs, case):
        r = case["config"].rank
        return (law(outputs["A"].shape[-1] == r, f"A has {outputs['A'].shape[-1]} columns, rank is {r}")
                + law(outputs["B"].shape[-1] == r, f"B has {outputs['B'].shape[-1]} columns, rank is {r}"))


@register
class ReuseZeroFreezes(NoiseCheck):
    id = "noise.reuse_zero_freezes"
    component = REUSE
    summary = "noise_reuse=0 (the default) uses the SAME noise in every epoch"

    def cases(self, profile):
        pop = Population(epochs=np.array([0, 1, 7, 100, 0, 9, 3, 3]), thread_ids=np.array([0, 0, 0, 0, 1, 1, 6, 6]))
        return [noise_case("epochs-0-1-7-100", NoiserConfig(rank=2, noise_reuse=0), pop, (4, 3), (5,))]

    def relations(self, outputs, case):
        t = case["population"].thread_ids
        bad = [(i, j) for i in range(len(t)) for j in range(i) if t[i] == t[j] and not same_noise(outputs, i, j)]
        return law(not bad, f"members {bad[:3]} share a thread but got different noise across epochs")


@register
class ReuseBlocks(NoiseCheck):
    id = "noise.reuse_blocks"
    component = REUSE
    summary = "noise_reuse=k>0: epochs e and e' share noise iff e // k == e' // k (k=1: fresh each epoch)"

    def cases(self, profile):
        epochs = np.arange(9)
        return [noise_case(f"k{k}", NoiserConfig(rank=2, noise_reuse=k),
                           Population(epochs=epochs, thread_ids=np.full(9, 4)), (4, 3), (5,)) for k in (1, 2, 3)]

    def relations(self, outputs, case):
        k = case["config"].noise_reuse
        e = case["population"].epochs
        bad = [(int(e[i]), int(e[j])) for i in range(len(e)) for j in range(i)
               if same_noise(outputs, i, j) != (e[i] // k == e[j] // k)]
        return law(not bad, f"noise_reuse={k}: epoch pairs {bad[:3]} share noise wrongly")


@register
class FullRank(NoiseCheck):
    id = "noise.full_rank"
    component = NONLORA
    summary = "non-matrix params get normal(shape) * (+-sigma), without 1/sqrt(rank)"

    def cases(self, profile):
        out = [noise_case(f"{'x'.join(map(str, s))}-f32", NoiserConfig(rank=4, sigma=0.5),
                          inputs.population("full", 32), full_shape=s)
               for s in ((5,), (3, 4), (2, 3, 4))]
        out.append(noise_case("3x4-bf16", NoiserConfig(rank=4, sigma=0.5), inputs.population("full", 32),
                              full_shape=(3, 4), dtype="bfloat16"))
        return out

    def relations(self, outputs, case):
        sigma = case["config"].sigma
        noise = np.asarray(outputs["noise"], np.float64)
        got = float(np.std(noise))
        samples = independent(case["population"]) * noise[0].size
        return law(abs(got / sigma - 1) < std_tolerance(samples), f"std of full noise {got:.4g}, sigma {sigma}")


@register
class BiasPerturbed(Check):
    id = "noise.bias_perturbed"
    component = NONLORA
    summary = "biases (PARAM leaves) are perturbed by get_noisy_standard unless freeze_nonlora"
    requires = frozenset({caps.FORWARD})
    rng = True
    own_rng_relations = True
    default_kind = "elementwise"

    def cases(self, profile):
        out = []
        for shape in ((7,), (2, 3)):
            c = NoiserConfig(sigma=0.2)
            name = f"bias{'x'.join(map(str, shape))}"
            out.append(Case(name, {"config": c, "param": inputs.normal(name, shape), "key": inputs.key(name),
                                   "population": inputs.population("full", 4)},
                            requires(c, extra={caps.FORWARD})))
        return out

    def compute(self, adapter, case, noise=None):
        return {"noisy": np.asarray(adapter.noisy_standard(case["config"], case["param"], case["key"],
                                                           case["population"]))}

    def relations(self, outputs, case):
        same = [n for n, row in enumerate(outputs["noisy"]) if np.array_equal(row, case["param"])]
        return law(not same, f"members {same} left the bias unperturbed")


@register
class FreezeNonlora(UpdateCheck):
    id = "noise.freeze_nonlora"
    component = NONLORA
    impact = "medium"
    summary = "freeze_nonlora: PARAM leaves get no noise and no update; matrices still do"
    own_rng_relations = True

    def cases(self, profile):
        c = NoiserConfig(rank=2, freeze_nonlora=True)
        return [update_case("mlp-frozen", c, {"0/weight": ((4, 3), MM_PARAM), "0/bias": ((4,), PARAM)},
                            inputs.population("full", 8), zero=False)]

    def compute(self, adapter, case, noise=None):
        out = super().compute(adapter, case, noise)
        bias = case["params"]["0"]["bias"]
        out["noisy_bias"] = np.asarray(adapter.noisy_standard(case["config"], bias, case["keys"]["0"]["bias"],
                                                              case["population"]))
        return out

    def relations(self, outputs, case):
        bias = case["params"]["0"]["bias"]
        return (self.unchanged(outputs, case, {PARAM})
                + law(all(np.array_equal(r, bias) for r in outputs["noisy_bias"]), "frozen bias was perturbed"))


@register
class EmbExcluded(UpdateCheck):
    id = "noise.emb_excluded"
    component = NONLORA
    impact = "medium"
    summary = "EMB_PARAM and EXCLUDED leaves get no noise and a zero update"
    own_rng_relations = True

    def cases(self, profile):
        leaves = {"emb": ((6, 4), EMB_PARAM), "frozen": ((3,), EXCLUDED), "head": ((2, 4), MM_PARAM),
                  "scale": ((2,), PARAM)}
        return [update_case("mixed", NoiserConfig(rank=2), leaves, inputs.population("full", 6), zero=False)]

    def relations(self, outputs, case):
        return self.unchanged(outputs, case, {EMB_PARAM, EXCLUDED})
