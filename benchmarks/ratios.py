"""The ratios reported for each workload, all of them throughput ratios (time ratios inverted).

``generation_over_inference``: a full generation (forward, fitness shaping, update) against
inference of the same model; ``torch_over_jax``: generations per second of torch over the jitted
JAX reference (``_cpu_time``: the same from process CPU time, steadier on a shared machine).
"""
from __future__ import annotations


def _ratio(measurements: dict, numerator: str, denominator: str, key: str = "time_s") -> float | None:
    """``t(numerator) / t(denominator)``: how many times faster ``denominator`` runs."""
    top = (measurements.get(numerator) or {}).get(key)
    bottom = (measurements.get(denominator) or {}).get(key)
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


def mlp_ratios(m: dict, in_turns: dict | None = None) -> dict:
    """Ratios of upstream's MLP example; ``_in_turns``: from the generations timed in turns."""
    in_turns = in_turns or {}
    return {
        "generation_over_inference": _ratio(m, "inference", "generation"),
        "torch_over_jax": _ratio(m, "jax_generation", "generation"),
        "torch_over_jax_cpu_time": _ratio(m, "jax_generation", "generation", "cpu_s"),
        "torch_over_jax_in_turns": _ratio(in_turns, "jax_generation", "generation"),
        "torch_over_jax_in_turns_cpu_time": _ratio(in_turns, "jax_generation", "generation", "cpu_s"),
    }


def trainer_ratios(wl, m: dict, in_turns: dict | None = None) -> dict:
    """Ratios of a trainer workload: the public API against the network's own inference and
    against jax_reference, and the generation's peak memory against inference's. Times come
    from ``in_turns`` (the calls timed in turns) where it has them, else from ``m``."""
    timed = timed_records(m, in_turns)
    gen_over_inf = _ratio(timed, "inference", "generation")
    redrawn_over_inf = _ratio(timed, "inference", "generation_redrawn")
    return {
        "generation_over_inference": gen_over_inf,
        "update_bound": wl.bound,
        "generation_over_bound": None if gen_over_inf is None else gen_over_inf / wl.bound,
        "generation_eager_over_inference": _ratio(timed, "inference", "generation_eager"),
        "torch_over_jax": _ratio(timed, "jax_generation", "generation"),
        "torch_over_jax_cpu_time": _ratio(timed, "jax_generation", "generation", "cpu_s"),
        "peak_over_inference": _peak_ratio(m, "generation"),
        "generation_redrawn_over_bound": None if redrawn_over_inf is None else redrawn_over_inf / wl.bound,
        "peak_redrawn_over_inference": _peak_ratio(m, "generation_redrawn"),
    }


def timed_records(m: dict, in_turns: dict | None) -> dict:
    """``m``'s records with those of ``in_turns`` (a failed ``in_turns`` has none) in their place."""
    return {**m, **{k: v for k, v in (in_turns or {}).items() if isinstance(v, dict)}}


def _peak_ratio(m: dict, variant: str) -> float | None:
    """Peak memory of ``variant`` over inference's."""
    peak, base = ((m.get(name) or {}).get("peak_bytes") for name in (variant, "inference"))
    return peak / base if peak and base else None
