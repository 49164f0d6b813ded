"""The ratios reported for each workload, all of them throughput ratios (time ratios inverted).

``forward_over_inference``: EGGROLL's perturbed forward (noise included) against pure inference
of the same model; ``generation_over_inference``: a full generation (forward, fitness shaping,
update) against inference; ``torch_over_jax``: generations per second of torch over the jitted
JAX reference (``_cpu_time``: the same from process CPU time, steadier on a shared machine). ``jax_*`` ratios are the JAX reference's own, comparable with upstream's numbers.
"""
from __future__ import annotations


def _time(measurements: dict, name: str) -> float | None:
    record = measurements.get(name) or {}
    return record.get("time_s")


def _ratio(measurements: dict, numerator: str, denominator: str, key: str = "time_s") -> float | None:
    """``t(numerator) / t(denominator)``: how many times faster ``denominator`` runs."""
    top = (measurements.get(numerator) or {}).get(key)
    bottom = (measurements.get(denominator) or {}).get(key)
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


def stack_ratios(wl, m: dict) -> dict:
    """Ratios of a stack workload from its measurements (missing ones give None)."""
    pair_normals = wl.layers * (wl.members // 2) * 2 * wl.width * wl.rank
    noise_s, randn_s = _time(m, "noise"), _time(m, "randn")
    return {
        "forward_over_inference": _ratio(m, "inference", "forward"),
        "generation_over_inference": _ratio(m, "inference", "generation"),
        "torch_over_jax": _ratio(m, "jax_generation", "generation"),
        "torch_over_jax_cpu_time": _ratio(m, "jax_generation", "generation", "cpu_s"),
        "forward_torch_over_jax": _ratio(m, "jax_forward", "forward"),
        "generation_torch_ops_over_inference": _ratio(m, "inference", "generation_torch_ops"),
        "jax_forward_over_jax_inference": _ratio(m, "jax_inference", "jax_forward"),
        "jax_generation_over_jax_inference": _ratio(m, "jax_inference", "jax_generation"),
        "torch_inference_over_jax_inference": _ratio(m, "jax_inference", "inference"),
        "noise_normals_per_s": pair_normals / noise_s if noise_s else None,
        "randn_normals_per_s": 2 * pair_normals / randn_s if randn_s else None,
        "update_bound": 1.0 / (1.0 + wl.rank / (2 * wl.tokens)),
    }


def mlp_ratios(m: dict) -> dict:
    """Ratios of upstream's MLP example."""
    return {
        "generation_over_inference": _ratio(m, "inference", "generation"),
        "torch_over_jax": _ratio(m, "jax_generation", "generation"),
        "torch_over_jax_cpu_time": _ratio(m, "jax_generation", "generation", "cpu_s"),
        "nn_trainer_over_jax": _ratio(m, "jax_generation", "nn_trainer"),
    }


def trainer_ratios(wl, m: dict) -> dict:
    """Ratios of a trainer workload: the public API against the network's own inference and
    against jax_reference, and the generation's peak memory against inference's."""
    gen_over_inf = _ratio(m, "inference", "generation")
    peak_gen = (m.get("generation") or {}).get("peak_bytes")
    peak_inf = (m.get("inference") or {}).get("peak_bytes")
    return {
        "generation_over_inference": gen_over_inf,
        "update_bound": wl.bound,
        "generation_over_bound": None if gen_over_inf is None else gen_over_inf / wl.bound,
        "generation_eager_over_inference": _ratio(m, "inference", "generation_eager"),
        "torch_over_jax": _ratio(m, "jax_generation", "generation"),
        "torch_over_jax_cpu_time": _ratio(m, "jax_generation", "generation", "cpu_s"),
        "peak_over_inference": peak_gen / peak_inf if peak_gen and peak_inf else None,
    }
