"""One member's perturbed forward primitives, parameterised by the noise function they use.

``iterinfo is None`` always means the unperturbed model.
"""
import jax.numpy as jnp


def low_rank_mm(lora_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
    """``x @ param.T + x @ B @ A.T`` for ``param`` ``(out, in)`` and factors from ``lora_fn``.

    Computed as two matmuls through the rank dimension, never forming ``A @ B.T``.
    """
    base_ans = x @ param.T
    if iterinfo is None:
        return base_ans
    A, B = lora_fn(
        frozen_noiser_params, noiser_params["sigma"] / jnp.sqrt(frozen_noiser_params["rank"]),
        iterinfo, param, base_key,
    )
    return base_ans + x @ B @ A.T


def low_rank_Tmm(lora_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
    """``x @ param + x @ A @ B.T`` for ``param`` ``(in, out)``: ``A`` spans ``in``, ``B`` spans ``out``."""
    base_ans = x @ param
    if iterinfo is None:
        return base_ans
    A, B = lora_fn(
        frozen_noiser_params, noiser_params["sigma"] / jnp.sqrt(frozen_noiser_params["rank"]),
        iterinfo, param, base_key,
    )
    return base_ans + x @ A @ B.T


def noisy_standard(noise_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
    """``param + noise_fn(sigma)``, or ``param`` itself when unperturbed or ``freeze_nonlora``."""
    if iterinfo is None or frozen_noiser_params["freeze_nonlora"]:
        return param
    return param + noise_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
