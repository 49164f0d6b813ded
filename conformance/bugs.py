"""The bugs the gate is proven to catch, as data: one entry per deliberately broken backend of
``tests/conformance/broken/catalog.py`` (the class of the same name implements it).

Golden vectors name them in their file-level ``notes``, under the flag of the cases that expose
the bug (Wycheproof's ``notes``), so a reader of a vector file learns what each case is for
without reading this harness. ``flag=None`` means every case of the check exposes it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    """A port bug: ``check`` is the check whose id names the behaviour it breaks; ``flag`` the
    case flag (a branch of that check) whose cases expose it, ``None`` for all of them."""

    text: str
    check: str
    flag: str | None = None


BUGS: dict[str, Bug] = {
    "DdofOne": Bug("fitness variance with torch's default ddof=1 (sample variance)",
                   "normalization.population_variance"),
    "EpsOutsideSqrt": Bug("(x - mean) / (std + 1e-5) instead of / sqrt(var + 1e-5)", "normalization.eps_inside_sqrt"),
    "PerGroupStd": Bug("group normalization divides each group by its own std", "normalization.group_global_std"),
    "FreshNoiseReuseZero": Bug("noise_reuse=0 redraws noise every epoch (read as 'no reuse')",
                               "noise.reuse_zero_freezes"),
    "PairsHalfApart": Bug("antithetic pairs are members (i, i + N/2) instead of threads (2i, 2i + 1)",
                          "signs.antithetic_pair"),
    "SignNeverAlternated": Bug("every member uses +sigma (the sign is never alternated)", "signs.alternation"),
    "NoInvSqrtRank": Bug("low-rank noise scaled by sigma instead of sigma / sqrt(rank)", "noise.rank_scaling"),
    "SlicesSwapped": Bug("A = draw[:a] and B = draw[a:] (upstream: B = draw[:b], A = draw[b:])", "noise.lora_slices"),
    "ThreadNotHalved": Bug("member key folds in thread_id instead of thread_id // 2", "noise.thread_halving"),
    "ReuseModulo": Bug("noise epoch is epoch % noise_reuse instead of epoch // noise_reuse", "noise.reuse_blocks"),
    "RankClipped": Bug("rank clipped to min(a, b) for small matrices", "noise.rank_not_clipped"),
    "BiasesNeverPerturbed": Bug("non-matrix parameters (biases) are never perturbed", "noise.bias_perturbed"),
    "BiasUpdateOverSigma": Bug("bias update divided by sigma (score-function estimator of other ES codes)",
                               "update.sigma_scaling"),
    "MissingSqrtN": Bug("update not multiplied by sqrt(N)", "update.scale_sqrt_n"),
    "DescentOnFitness": Bug("the step descends on fitness (sign of the update flipped)", "update.ascent_sign"),
    "AdamwTorchDecay": Bug("AdamW with torch's default weight_decay=1e-2 (optax: 1e-4)", "optimizer.adamw_defaults"),
    "UpdateLeftInFloat32": Bug("bfloat16 params: the update is added to float32 copies and never cast back to the "
                               "param's dtype", "update.low_precision", "bfloat16"),
    "Float16ThroughBfloat16": Bug("float16 params updated through bfloat16 ('half precision' read as bfloat16): "
                                  "3 mantissa bits lost", "update.low_precision", "float16"),
    "StepLeftInStateDtype": Bug("with the optimizer state in float32 (mu_dtype) the float32 step is added to the "
                                "bfloat16 params and the result kept in float32", "update.low_precision",
                                "state_dtype_differs"),
    "SgdInFloat64": Bug("the SGD step computed in float64 and rounded once: up to 1 ULP from optax's two float32 "
                        "roundings", "optimizer.sgd"),
    "AdamEpsKeras": Bug("Adam's eps is Keras's 1e-7 instead of optax's 1e-8: wrong where gradients are small",
                        "optimizer.adam"),
    "KeysRegistrationOrder": Bug("per-parameter keys assigned in registration order instead of sorted flatten order",
                                 "keys.tree_order"),
    "TrustRegionIgnored": Bug("EggRollBS without clip_by_global_norm(trust_region_norm) before the solver",
                              "noiser.eggrollbs", "clip_fires"),
    "BatchedByShapeOnly": Bug("use_batched_update groups leaves by shape alone, so a same-shape bias-like leaf is "
                              "updated as a low-rank matrix", "update.batched_equals_plain", "same_shape_other_class"),
}


def for_check(check_id: str) -> dict[str, Bug]:
    """``{name: bug}`` of the bugs that ``check_id`` names."""
    return {name: bug for name, bug in BUGS.items() if bug.check == check_id}
