"""Forward passes with a member's noise, parameterised by the noise function they draw it with.

``iterinfo is None`` always means the unperturbed model. One member per call, as upstream:
``x (..., in)``.
"""
from ._member import lora_sigma


def low_rank_mm(lora_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """``x @ param.T + x @ B @ A.T`` (``do_mm``, ``param (out, in)``) or ``x @ param + x @ A @ B.T``
    (``do_Tmm``, ``param (in, out)``), factors from ``lora_fn`` at ``sigma / sqrt(rank)``; two
    matmuls through the rank dimension, never forming ``A @ B.T``."""
    base_ans = x @ (param if transposed else param.T)
    if iterinfo is None:
        return base_ans
    A, B = lora_fn(frozen_noiser_params, lora_sigma(noiser_params["sigma"], frozen_noiser_params["rank"]), iterinfo,
                   param, base_key)
    first, second = (A, B) if transposed else (B, A)
    return base_ans + x @ first @ second.T


def full_mm(noise_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """``x @ (param + noise).T`` (``do_mm``) or ``x @ (param + noise)`` (``do_Tmm``), full-rank noise
    from ``noise_fn``; the noisy matrix is formed explicitly."""
    if iterinfo is None:
        return x @ (param if transposed else param.T)
    noisy = param + noise_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
    return x @ (noisy if transposed else noisy.T)


def noisy_standard(noise_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
    """``param + noise_fn(sigma)``; ``param`` itself when unperturbed or ``freeze_nonlora``."""
    if iterinfo is None or frozen_noiser_params["freeze_nonlora"]:
        return param
    return param + noise_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
