"""Per-parameter gradient estimates from a population's noise and fitnesses.

Each estimator has the signature upstream's per-leaf update functions have,
``(base_sigma, param, key, scores, iterinfo, frozen_noiser_params)``, plus a leading noise
function. ``scores``: ``(N,)``; ``iterinfo``: ``(epochs, thread_ids)``, each ``(N,)``.
The result has ``param``'s shape and is the plain weighted mean; sign and ``sqrt(N)``
scaling happen later in ``_update.leaf_gradient``.
"""
from functools import partial

import jax
import jax.numpy as jnp


def draw_population(noise_fn, frozen_noiser_params, base_sigma, iterinfo, param, key):
    """``noise_fn`` for all N members at once (vmapped over ``iterinfo``); outputs gain a leading N axis."""
    return jax.vmap(partial(noise_fn, frozen_noiser_params), in_axes=(None, 0, None, None))(
        base_sigma, iterinfo, param, key
    )


def full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(scores[n] * noise_n)`` computed in the promoted dtype, then cast to ``param.dtype``."""
    noise = draw_population(noise_fn, frozen_noiser_params, base_sigma, iterinfo, param, key)
    weights = jnp.reshape(scores, scores.shape + (1,) * len(param.shape))
    return jnp.astype(jnp.mean(weights * noise, axis=0), param.dtype)


def nonlora_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """:func:`full_rank_gradient`, or zeros when ``freeze_nonlora`` is set."""
    if frozen_noiser_params["freeze_nonlora"]:
        return jnp.zeros_like(param)
    return full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params)


def low_rank_gradient(lora_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n scores[n] * A_n @ B_n.T / N`` for a matrix ``(a, b)``.

    Factors are drawn with ``base_sigma / sqrt(rank)``; the fitness multiplies ``A`` (``(N, a, r)``)
    before one contraction over members and rank. Not cast back to ``param.dtype``: it keeps the
    dtype that fitness (usually float32) times ``A`` promotes to.
    """
    A, B = draw_population(
        lora_fn, frozen_noiser_params, base_sigma / jnp.sqrt(frozen_noiser_params["rank"]),
        iterinfo, param, key,
    )
    A = jnp.reshape(scores, scores.shape + (1, 1)) * A
    return jnp.einsum("nir,njr->ij", A, B) / scores.shape[0]


def zero_gradient(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Zeros like ``param``: embeddings and excluded parameters are never updated."""
    return jnp.zeros_like(param)
