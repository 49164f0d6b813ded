"""Gaussian perturbations of one member: low-rank factors for matrices, full noise otherwise.

Shared by the EGGROLL, OpenES, alternating-EGGROLL and sparse noisers, which draw them the same way.
"""
import jax

from ._member import antithetic_sigma, member_key


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Low-rank factors ``(A, B)`` of one member's perturbation ``A @ B.T`` of a matrix.

    ``param``: ``(a, b)``. One ``(a + b, rank)`` normal draw in ``param.dtype`` is split as
    ``B = draw[:b]`` (``(b, rank)``) and ``A = draw[b:] * (+-base_sigma)`` (``(a, rank)``), the
    sign and scale living in ``A`` only. Callers pass ``base_sigma = sigma / sqrt(rank)``.
    """
    a, b = param.shape
    draw = jax.random.normal(
        member_key(frozen_noiser_params, iterinfo, key),
        (a + b, frozen_noiser_params["rank"]),
        dtype=param.dtype,
    )
    return draw[b:] * antithetic_sigma(base_sigma, iterinfo[1]), draw[:b]


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Full-rank noise of one member, ``normal(param.shape, param.dtype) * (+-base_sigma)``."""
    draw = jax.random.normal(
        member_key(frozen_noiser_params, iterinfo, key), param.shape, dtype=param.dtype
    )
    return draw * antithetic_sigma(base_sigma, iterinfo[1])
