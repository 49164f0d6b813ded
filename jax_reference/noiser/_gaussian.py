"""Gaussian perturbations of one member: low-rank factors for matrices, full noise otherwise.

Shared by the EGGROLL, OpenES, alternating-EGGROLL and sparse noisers, which draw them the same way.
"""
import jax

from ._member import member_coordinates, member_key


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Low-rank factors ``(A, B)`` of one member's perturbation ``A @ B.T`` of a matrix.

    ``param``: ``(a, b)``. One ``(a + b, rank)`` normal draw in ``param.dtype`` is split as
    ``B = draw[:b]`` (``(b, rank)``) and ``A = draw[b:] * (+-base_sigma)`` (``(a, rank)``), the
    sign and scale living in ``A`` only. Callers pass ``base_sigma = sigma / sqrt(rank)``.
    """
    true_epoch, pair, sigma = member_coordinates(frozen_noiser_params, base_sigma, iterinfo)
    a, b = param.shape
    draw = jax.random.normal(
        member_key(key, true_epoch, pair), (a + b, frozen_noiser_params["rank"]), dtype=param.dtype
    )
    B = draw[:b]
    A = draw[b:]
    return A * sigma, B


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Full-rank noise of one member, ``normal(param.shape, param.dtype) * (+-base_sigma)``."""
    true_epoch, pair, sigma = member_coordinates(frozen_noiser_params, base_sigma, iterinfo)
    draw = jax.random.normal(member_key(key, true_epoch, pair), param.shape, dtype=param.dtype)
    return draw * sigma
