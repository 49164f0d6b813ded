"""Which random key, and which sign, one population member uses for one parameter.

A member is identified by ``iterinfo = (epoch, thread_id)`` (Python ints or integer arrays).
Threads ``2i`` and ``2i + 1`` form an antithetic pair: they share a key and differ in sign.
"""
import jax
import jax.numpy as jnp


def noise_epoch(noise_reuse, epoch):
    """Epoch index folded into the key: 0 forever when ``noise_reuse == 0``, else ``epoch // noise_reuse``.

    So ``noise_reuse=0`` (the default) freezes the noise, ``1`` redraws every epoch and ``n``
    keeps the same noise for blocks of ``n`` consecutive epochs.
    """
    return 0 if noise_reuse == 0 else epoch // noise_reuse


def antithetic_sigma(base_sigma, thread_id):
    """``+base_sigma`` for an even ``thread_id``, ``-base_sigma`` for an odd one (same dtype as ``base_sigma``)."""
    return jnp.where(thread_id % 2 == 0, base_sigma, -base_sigma)


def lora_sigma(sigma, rank):
    """``sigma / sqrt(rank)``, the scale folded into ``A`` of the low-rank factors."""
    return sigma / jnp.sqrt(rank)


def member_coordinates(frozen_noiser_params, base_sigma, iterinfo):
    """``(noise epoch, pair index thread_id // 2, signed sigma)`` of one member."""
    epoch, thread_id = iterinfo
    true_epoch = noise_epoch(frozen_noiser_params["noise_reuse"], epoch)
    pair = thread_id // 2
    return true_epoch, pair, antithetic_sigma(base_sigma, thread_id)


def member_key(key, true_epoch, pair):
    """The member's key for a parameter whose key is ``key``: ``fold_in(fold_in(key, true_epoch), pair)``."""
    return jax.random.fold_in(jax.random.fold_in(key, true_epoch), pair)
