"""Per-parameter gradient estimates ``sum_n f_n * noise_n / N`` of the population.

Each estimator takes upstream's per-leaf update arguments ``(base_sigma, param, key, scores,
iterinfo, frozen_noiser_params)`` after a leading noise function (a noiser's ``full_noise`` or
``lora_noise``), with ``scores (N,)`` and ``iterinfo = (epochs, thread_ids)``, each ``(N,)``,
and returns ``param``'s shape: the plain weighted mean, whose sign and ``sqrt(N)`` scaling
``_update.leaf_gradient`` applies. Each member's noise is drawn by vmapping the noise function.
"""
from functools import partial

import jax
import jax.numpy as jnp

from ._member import lora_sigma


def update_fns(noiser):
    """``noiser``'s per-leaf estimators, indexed by es class (PARAM, MM_PARAM, EMB_PARAM, EXCLUDED),
    each called as ``(base_sigma, param, key, scores, iterinfo, frozen_noiser_params)``: full-noise
    for PARAM, ``noiser.matrix_gradient`` for MM_PARAM, zeros for the others.

    Upstream's modules define them as ``_simple_full_update``, ``_simple_lora_update`` (or
    ``_simple_sparse_update``) and ``_noop_update``; each noiser module binds those names with this
    helper. The noise comes from ``noiser``'s classmethods, so a subclass's noise reaches its update.
    """
    return (partial(nonlora_gradient, noiser.full_noise), noiser.matrix_gradient, zero_gradient, zero_gradient)


def draw_population(noise_fn, frozen_noiser_params, base_sigma, iterinfo, param, key):
    """``noise_fn`` for all N members at once (vmapped over ``iterinfo``); outputs gain a leading N axis."""
    return jax.vmap(partial(noise_fn, frozen_noiser_params), in_axes=(None, 0, None, None))(
        base_sigma, iterinfo, param, key
    )


def full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` computed in the promoted dtype, then cast to ``param.dtype``."""
    noise = draw_population(noise_fn, frozen_noiser_params, base_sigma, iterinfo, param, key)
    weights = jnp.reshape(scores, scores.shape + (1,) * len(param.shape))
    return jnp.astype(jnp.mean(weights * noise, axis=0), param.dtype)


def nonlora_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """:func:`full_rank_gradient` of a ``PARAM`` leaf; zeros when ``freeze_nonlora``."""
    if frozen_noiser_params["freeze_nonlora"]:
        return jnp.zeros_like(param)
    return full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params)


def low_rank_gradient(lora_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n * A_n @ B_n.T / N`` for a matrix ``(a, b)``, with the factors as drawn by
    ``lora_fn`` at ``base_sigma / sqrt(rank)`` (sign and scale inside ``A``).

    The fitness multiplies ``A`` (``(N, a, r)``) before one contraction over members and rank.
    Not cast back to ``param.dtype``: it keeps the dtype that fitness (usually float32) times
    ``A`` promotes to.
    """
    A, B = draw_population(lora_fn, frozen_noiser_params, lora_sigma(base_sigma, frozen_noiser_params["rank"]),
                           iterinfo, param, key)
    A = jnp.reshape(scores, scores.shape + (1, 1)) * A
    return jnp.einsum("nir,njr->ij", A, B) / scores.shape[0]


def zero_gradient(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """No update (``EMB_PARAM``, ``EXCLUDED``)."""
    return jnp.zeros_like(param)
